// train/loader.cpp — (being written)
