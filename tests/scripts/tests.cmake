# tests of scripts/ (significance, plots, record assembly, record.py, the pipeline module): Python unittest files run
# with the pinned venv's python (GOLF_PYTHON), which has scipy (the significance reference values)
# and matplotlib. No build products needed; record.py runs against stand-in tools.
foreach(name significance plot_runs make_record record)
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
# The GPU kit (scripts/gpu/): bundle.sh --tiny (and its size limit), then check.sh --cpu from a copy
# of the tree without the build folder, as on the GPU machine; report.py's parsers. Reads the
# build's binaries and the twin's debug state (fixture twin, copied into the bundle).
add_test(NAME scripts.gpu_kit
         COMMAND "${GOLF_PYTHON}" -W error::ResourceWarning "${CMAKE_CURRENT_SOURCE_DIR}/scripts/test_gpu_kit.py"
         WORKING_DIRECTORY "${CMAKE_CURRENT_SOURCE_DIR}/scripts")
set_tests_properties(scripts.gpu_kit PROPERTIES TIMEOUT 900 FIXTURES_REQUIRED twin ENVIRONMENT
  "OMP_NUM_THREADS=1;GOLF_BUILD_DIR=${CMAKE_BINARY_DIR};GOLF_PYTHON=${GOLF_PYTHON};GOLF_DATA_DIR=${GOLF_SHARED_DIR}/data;GOLF_TOKENIZER_DIR=${GOLF_SHARED_DIR}/tokenizers")
# scripts/golf_pipeline.py (the module the scripts share): helpers, the stage table read from golf-train
# (the real one from this build when it is built; else those tests skip), no private imports across scripts.
add_test(NAME scripts.golf_pipeline
         COMMAND "${GOLF_PYTHON}" -W error::ResourceWarning "${CMAKE_CURRENT_SOURCE_DIR}/scripts/test_golf_pipeline.py"
         WORKING_DIRECTORY "${CMAKE_CURRENT_SOURCE_DIR}/scripts")
set_tests_properties(scripts.golf_pipeline PROPERTIES TIMEOUT 120 ENVIRONMENT "GOLF_BUILD_DIR=${CMAKE_BINARY_DIR}")
# The include layering (issue 17): libraries (core, model, artifact, scoring, quant) include no stage.
add_test(NAME scripts.layering
         COMMAND "${GOLF_PYTHON}" -W error::ResourceWarning "${CMAKE_CURRENT_SOURCE_DIR}/scripts/test_layering.py"
         WORKING_DIRECTORY "${CMAKE_CURRENT_SOURCE_DIR}/scripts")
set_tests_properties(scripts.layering PROPERTIES TIMEOUT 60)
# Every docs/… path and reference-note name cited in the tree names a file of the repository.
add_test(NAME scripts.doc_citations
         COMMAND "${GOLF_PYTHON}" -W error::ResourceWarning "${CMAKE_CURRENT_SOURCE_DIR}/scripts/test_doc_citations.py"
         WORKING_DIRECTORY "${CMAKE_CURRENT_SOURCE_DIR}/scripts")
set_tests_properties(scripts.doc_citations PROPERTIES TIMEOUT 60)
# scripts/bench/plan_refit.py (golf's refit after a coder change): its edits of pack/plan.h, plan_records.sh
# and the jsonl on copies; plan_calibrate.py's golf mid class and step variable on the repository's data.
add_test(NAME scripts.plan_refit
         COMMAND "${GOLF_PYTHON}" -W error::ResourceWarning "${CMAKE_CURRENT_SOURCE_DIR}/scripts/test_plan_refit.py"
         WORKING_DIRECTORY "${CMAKE_CURRENT_SOURCE_DIR}/scripts")
set_tests_properties(scripts.plan_refit PROPERTIES TIMEOUT 60)
# scripts/bench/lqer_sizes.py --run (issue 14's size table): rows, error math, --val once per LQER
# setting, the run directory untouched; a stand-in golf-pack.
add_test(NAME scripts.lqer_sizes
         COMMAND "${GOLF_PYTHON}" -W error::ResourceWarning "${CMAKE_CURRENT_SOURCE_DIR}/scripts/test_lqer_sizes.py"
         WORKING_DIRECTORY "${CMAKE_CURRENT_SOURCE_DIR}/scripts")
set_tests_properties(scripts.lqer_sizes PROPERTIES TIMEOUT 120)
