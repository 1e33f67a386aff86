// tests/pack/code_size_test.cpp — (being written)
