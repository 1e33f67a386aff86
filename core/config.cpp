// core/config.cpp — (being written)
