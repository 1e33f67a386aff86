// Declaration-only stand-in (see ../../README.txt).
#pragma once
