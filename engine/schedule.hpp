// engine/schedule.hpp: being written.
