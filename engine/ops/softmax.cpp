// engine/ops/softmax.cpp: being written.
