// engine/ops/gru_cell.cpp: being written.
