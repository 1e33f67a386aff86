// core/tensor_io.h — (being written)
#pragma once
