// train/loader.h — (being written)
#pragma once
