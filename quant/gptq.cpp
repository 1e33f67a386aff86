// quant/gptq.cpp — (being written)
