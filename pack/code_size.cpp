// pack/code_size.cpp — (being written)
