// engine/optim.cpp: being written.
