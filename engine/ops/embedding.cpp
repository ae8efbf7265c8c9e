// engine/ops/embedding.cpp: being written.
