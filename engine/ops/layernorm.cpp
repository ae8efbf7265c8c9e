// engine/ops/layernorm.cpp: being written.
