# Version string and git hash in build/generated/segqa_version.h, refreshed at every build (not only
# at configure time) so `segqa --version` names the commit the binary was really built from.
# The file is rewritten only when its content changes, so an unchanged tree does not relink.
if(CMAKE_SCRIPT_MODE_FILE)
  # Script mode: invoked by the segqa_version target with SRC, OUT and the fixed fields.
  set(hash "unknown")
  find_package(Git QUIET)
  if(GIT_FOUND AND EXISTS ${SRC}/.git)
    execute_process(COMMAND ${GIT_EXECUTABLE} rev-parse --short=12 HEAD WORKING_DIRECTORY ${SRC}
                    OUTPUT_VARIABLE h OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE rc)
    if(rc EQUAL 0 AND h)
      set(hash ${h})
      execute_process(COMMAND ${GIT_EXECUTABLE} diff --quiet HEAD -- WORKING_DIRECTORY ${SRC}
                      RESULT_VARIABLE dirty ERROR_QUIET)
      if(NOT dirty EQUAL 0)
        set(hash "${hash}-dirty")
      endif()
    endif()
  endif()
  set(text "/* Generated at build time by cmake/SegqaVersion.cmake — do not edit. */
#ifndef SEGQA_VERSION_H
#define SEGQA_VERSION_H
#define SEGQA_VERSION \"${VERSION}\"
#define SEGQA_GIT_HASH \"${hash}\"
#define SEGQA_BUILD_TYPE \"${BUILD_TYPE}\"
#define SEGQA_SANITIZERS \"${SANITIZE}\"
#endif
")
  set(old "")
  if(EXISTS ${OUT})
    file(READ ${OUT} old)
  endif()
  if(NOT old STREQUAL text)
    file(WRITE ${OUT} "${text}")
  endif()
  return()
endif()

add_custom_target(segqa_version
  COMMAND ${CMAKE_COMMAND} -DSRC=${PROJECT_SOURCE_DIR} -DOUT=${PROJECT_BINARY_DIR}/generated/segqa_version.h
          -DVERSION=${PROJECT_VERSION} -DBUILD_TYPE=${CMAKE_BUILD_TYPE} -DSANITIZE=${SEGQA_SANITIZE}
          -P ${PROJECT_SOURCE_DIR}/cmake/SegqaVersion.cmake
  BYPRODUCTS ${PROJECT_BINARY_DIR}/generated/segqa_version.h
  COMMENT "segqa: version header" VERBATIM)
