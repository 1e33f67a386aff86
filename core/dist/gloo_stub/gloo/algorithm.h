// Declaration-only stand-in (see ../README.txt).
#pragma once
#include "gloo/context.h"
