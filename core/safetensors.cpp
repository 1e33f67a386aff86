// core/safetensors.cpp — (being written)
