// quant/half.h — (being written)
#pragma once
