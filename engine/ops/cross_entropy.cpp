// engine/ops/cross_entropy.cpp: being written.
