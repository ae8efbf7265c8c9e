// tests/test_optim.cpp: being written.
