// pack/code_size.h — (being written)
#pragma once
