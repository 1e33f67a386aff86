// core/tensor_io.cpp — (being written)
