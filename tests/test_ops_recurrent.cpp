// tests/test_ops_recurrent.cpp: being written.
