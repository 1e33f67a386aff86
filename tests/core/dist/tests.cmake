# tests of core/dist (the launcher, collectives) and of distributed training
golf_test(dist_comm_tests core/dist/comm_test.cpp)
target_link_libraries(dist_comm_tests PRIVATE golf_dist)

# The distributed optimizer step through a process group of one rank (Gloo; NCCL on a GPU) against
# the single-process step.
golf_test(dist_step_tests core/dist/group_of_one_test.cpp)
target_link_libraries(dist_step_tests PRIVATE golf_train)

# Multi-process runs of golf-train on CPU/Gloo. Every run inside is bounded by `timeout`, and each
# ctest entry by TIMEOUT, so a hang fails instead of blocking CI.
golf_test(dist_train_tests core/dist/dist_train_test.cpp)
target_link_libraries(dist_train_tests PRIVATE golf_core)
target_compile_definitions(dist_train_tests PRIVATE GOLF_TRAIN_BIN_DEFAULT="$<TARGET_FILE:golf-train>" GOLF_DATA_BIN_DEFAULT="$<TARGET_FILE:golf-data>")
add_dependencies(dist_train_tests golf-train golf-data)
