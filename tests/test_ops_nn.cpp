// tests/test_ops_nn.cpp: being written.
