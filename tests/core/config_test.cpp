// tests/core/config_test.cpp — (being written)
