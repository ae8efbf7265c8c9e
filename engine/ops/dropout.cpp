// engine/ops/dropout.cpp: being written.
