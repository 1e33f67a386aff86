# tests of scripts/ (significance, plots, record assembly, record.sh): Python unittest files run
# with the pinned venv's python (GOLF_PYTHON), which has scipy (the significance reference values)
# and matplotlib. No build products needed; record.sh runs against stand-in tools.
foreach(name significance plot_runs make_record record_sh)
  add_test(NAME scripts.${name}
           COMMAND "${GOLF_PYTHON}" -W error::ResourceWarning "${CMAKE_CURRENT_SOURCE_DIR}/scripts/test_${name}.py"
           WORKING_DIRECTORY "${CMAKE_CURRENT_SOURCE_DIR}/scripts")
  set_tests_properties(scripts.${name} PROPERTIES TIMEOUT 120 ENVIRONMENT "MPLBACKEND=Agg")
endforeach()
# scripts/ablate.py (ablation runner): variant specs, summary math, FAILED runs, outputs; stand-in tools.
add_test(NAME scripts.ablate
         COMMAND "${GOLF_PYTHON}" -W error::ResourceWarning "${CMAKE_CURRENT_SOURCE_DIR}/scripts/test_ablate.py"
         WORKING_DIRECTORY "${CMAKE_CURRENT_SOURCE_DIR}/scripts")
set_tests_properties(scripts.ablate PROPERTIES TIMEOUT 120 ENVIRONMENT "MPLBACKEND=Agg")
