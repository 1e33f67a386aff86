# Finds LibTorch inside the pinned PyPI wheel `torch==2.11.0` (the CUDA 13.0 build).
# The interpreter comes from GOLF_PYTHON (scripts/setup.sh passes the cached venv's python);
# any other torch version stops the configure with a message that says how to fix it.
set(GOLF_TORCH_VERSION "2.11.0" CACHE STRING "the only torch version golf builds against")
if(NOT GOLF_PYTHON)
  find_program(GOLF_PYTHON NAMES python3 python)
endif()
if(NOT GOLF_PYTHON)
  message(FATAL_ERROR "golf: no Python interpreter found; run scripts/setup.sh or pass -DGOLF_PYTHON=<venv>/bin/python")
endif()
execute_process(
  COMMAND "${GOLF_PYTHON}" -c "import torch, torch.utils; print(torch.__version__); print(torch.utils.cmake_prefix_path); print(torch.version.cuda or '')"
  OUTPUT_VARIABLE _golf_torch_out ERROR_VARIABLE _golf_torch_err RESULT_VARIABLE _golf_torch_rc
  OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT _golf_torch_rc EQUAL 0)
  message(FATAL_ERROR "golf: ${GOLF_PYTHON} cannot import torch (${_golf_torch_err}).\n"
                      "Run scripts/setup.sh, which installs torch==${GOLF_TORCH_VERSION} into ~/.cache/golf.")
endif()
string(REPLACE "\n" ";" _golf_torch_out "${_golf_torch_out}")
list(GET _golf_torch_out 0 GOLF_TORCH_FOUND_VERSION)
list(GET _golf_torch_out 1 _golf_torch_prefix)
list(GET _golf_torch_out 2 GOLF_TORCH_CUDA)
string(REGEX REPLACE "\\+.*$" "" _golf_torch_base "${GOLF_TORCH_FOUND_VERSION}")
if(NOT _golf_torch_base VERSION_EQUAL GOLF_TORCH_VERSION)
  message(FATAL_ERROR "golf: found torch ${GOLF_TORCH_FOUND_VERSION} at ${GOLF_PYTHON}, but golf is pinned to "
                      "torch==${GOLF_TORCH_VERSION} (private ATen op schemas change between releases). "
                      "Run scripts/setup.sh or point -DGOLF_PYTHON at an interpreter with torch ${GOLF_TORCH_VERSION}.")
endif()
message(STATUS "golf: torch ${GOLF_TORCH_FOUND_VERSION} (CUDA ${GOLF_TORCH_CUDA}) from ${GOLF_PYTHON}")
list(APPEND CMAKE_PREFIX_PATH "${_golf_torch_prefix}")
# Without a GPU the torch CMake files would otherwise guess a long list of architectures; they
# take the list from TORCH_CUDA_ARCH_LIST (→ -gencode arch=compute_90a,code=sm_90a) and complain
# if CMAKE_CUDA_ARCHITECTURES is set while they look, so it is hidden from them meanwhile.
set(ENV{TORCH_CUDA_ARCH_LIST} "9.0a")
set(_golf_cuda_archs "${CMAKE_CUDA_ARCHITECTURES}")
unset(CMAKE_CUDA_ARCHITECTURES)
find_package(Torch REQUIRED)
set(CMAKE_CUDA_ARCHITECTURES "${_golf_cuda_archs}")
