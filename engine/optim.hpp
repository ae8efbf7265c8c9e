// engine/optim.hpp: being written.
