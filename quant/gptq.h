// quant/gptq.h — (being written)
#pragma once
