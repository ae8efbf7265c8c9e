// tests/test_kernels.cpp: being written.
