// pack/artifact.h — (being written)
#pragma once
