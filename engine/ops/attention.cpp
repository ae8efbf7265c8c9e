// engine/ops/attention.cpp: being written.
