# Run by ctest (see the top-level CMakeLists.txt): proves that an outside
# project can build against an *installed* Sluice and that its binary works.
#   1. cmake --install the build tree into WORK_DIR/prefix
#   2. configure and build this folder against it with find_package(sluice)
#   3. check the example's config.json with the built binary's --validate
#   4. run the e2e tests tagged [custom_filter] with the built binary as the gateway
# Inputs: SLUICE_BUILD_DIR, SLUICE_SOURCE_DIR, WORK_DIR, GENERATOR, E2E_TESTS.
cmake_minimum_required(VERSION 3.25)

function(run step)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${step} failed (${rc}): ${ARGN}")
  endif()
endfunction()

file(REMOVE_RECURSE ${WORK_DIR})
set(prefix ${WORK_DIR}/prefix)
set(build ${WORK_DIR}/build)

run("install" ${CMAKE_COMMAND} --install ${SLUICE_BUILD_DIR} --prefix ${prefix})
foreach(expected include/sluice/core/filter.h include/sluice/listeners/gateway.h
                 include/sluice/filters/auth/jwt.h lib/libsluice.a lib/cmake/sluice/sluiceConfig.cmake bin/sluice)
  if(NOT EXISTS ${prefix}/${expected})
    message(FATAL_ERROR "the install is missing ${expected}")
  endif()
endforeach()

run("configure" ${CMAKE_COMMAND} -S ${SLUICE_SOURCE_DIR}/examples/custom_filter -B ${build}
    -G ${GENERATOR} -DCMAKE_PREFIX_PATH=${prefix})
run("build" ${CMAKE_COMMAND} --build ${build} -j2)

run("the example's own config validates" ${build}/custom_gateway
    --validate ${SLUICE_SOURCE_DIR}/examples/custom_filter/config.json)

set(ENV{SLUICE_E2E_BINARY} ${build}/custom_gateway)
# --warn NoTests: a test binary that lacks these tests must fail, not pass.
run("e2e tests against custom_gateway" ${E2E_TESTS} "[custom_filter]" --warn NoTests)
file(REMOVE_RECURSE ${WORK_DIR})
