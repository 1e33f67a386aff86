// tests/quant/gptq_test.cpp — (being written)
