// tests/core/tensor_io_test.cpp — (being written)
