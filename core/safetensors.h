// core/safetensors.h — (being written)
#pragma once
