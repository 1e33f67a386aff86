// pack/artifact.cpp — (being written)
