# Version string and git hash, written to build/generated/segqa_version.h at configure time.
set(SEGQA_GIT_HASH "unknown")
find_package(Git QUIET)
if(GIT_FOUND AND EXISTS ${PROJECT_SOURCE_DIR}/.git)
  execute_process(COMMAND ${GIT_EXECUTABLE} rev-parse --short=12 HEAD
                  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR} OUTPUT_VARIABLE _hash
                  OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE _rc)
  if(_rc EQUAL 0 AND _hash)
    set(SEGQA_GIT_HASH ${_hash})
  endif()
endif()
configure_file(${PROJECT_SOURCE_DIR}/cmake/segqa_version.h.in
               ${PROJECT_BINARY_DIR}/generated/segqa_version.h @ONLY)
