// engine/ops/concat.cpp: being written.
