# What `cmake --install <build> --prefix P` puts under P (docs/embedding.md):
#
#   P/lib/libjobsmith_*.a                   the static libraries jobsmith::engine
#                                           and jobsmith::server link
#   P/include/jobsmith/<folder>/<file>.hpp  the public headers, in their
#                                           source folders
#   P/lib/cmake/jobsmith/                   jobsmith-config.cmake (finds the
#                                           dependencies), the version file,
#                                           the exported targets, FindCAF.cmake
#   P/bin/jobsmith                          the binary
#
# Only what the targets of this build hold is installed: a build of some
# folders (JOBSMITH_PARTS) installs the package only if it has the engine's
# libraries, and jobsmith::server only if it has apps/server.
include(CMakePackageConfigHelpers)

set(JOBSMITH_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/jobsmith)

# The public surface: the engine facade and the headers it includes, each
# including the others by relative path ("../events/event.hpp"), so they
# resolve from P/include/jobsmith alone. No CAF, RocksDB or RESTinio header
# is among them or included by them.
set(JOBSMITH_ENGINE_HEADERS
  actors/clock.hpp
  actors/engine.hpp
  actors/engine_error.hpp
  actors/engine_types.hpp
  actors/handler.hpp
  actors/lock_table.hpp         # lock_table::wait_reason, in engine::explain()'s answer
  events/event.hpp
  events/job_state.hpp
  projections/job_filter.hpp
  projections/row_store.hpp  # the storage of queue_view's rows
  projections/queue_view.hpp
)
# jobsmith::server's: the server over an engine, its tokens, the beanstalkd
# protocol's options.
set(JOBSMITH_SERVER_HEADERS
  apps/server/auth.hpp
  apps/server/beanstalk/options.hpp
  apps/server/server.hpp
)

function(jobsmith_install_headers)
  foreach(header IN LISTS ARGN)
    get_filename_component(folder ${header} DIRECTORY)
    install(FILES ${PROJECT_SOURCE_DIR}/${header}
            DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/jobsmith/${folder})
  endforeach()
endfunction()

set(engine_targets jobsmith_events jobsmith_store jobsmith_projections jobsmith_actors jobsmith_engine)
set(has_engine TRUE)
foreach(target IN LISTS engine_targets)
  if(NOT TARGET ${target})
    set(has_engine FALSE)
  endif()
endforeach()
set(JOBSMITH_HAS_SERVER FALSE)
if(has_engine AND TARGET jobsmith_server)
  set(JOBSMITH_HAS_SERVER TRUE)
endif()

if(has_engine)
  set(exported ${engine_targets})
  jobsmith_install_headers(${JOBSMITH_ENGINE_HEADERS})
  if(JOBSMITH_HAS_SERVER)
    list(APPEND exported jobsmith_server jobsmith_dashboard jobsmith_beanstalk_codec)
    jobsmith_install_headers(${JOBSMITH_SERVER_HEADERS})
  endif()
  install(TARGETS ${exported} EXPORT jobsmith-targets
          ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
  install(EXPORT jobsmith-targets NAMESPACE jobsmith::
          DESTINATION ${JOBSMITH_INSTALL_CMAKEDIR})

  configure_package_config_file(
    ${PROJECT_SOURCE_DIR}/cmake/jobsmith-config.cmake.in
    ${PROJECT_BINARY_DIR}/jobsmith-config.cmake
    INSTALL_DESTINATION ${JOBSMITH_INSTALL_CMAKEDIR})
  # 0.x: a minor version may change the API, so only the same minor matches.
  write_basic_package_version_file(
    ${PROJECT_BINARY_DIR}/jobsmith-config-version.cmake
    COMPATIBILITY SameMinorVersion)
  install(FILES
    ${PROJECT_BINARY_DIR}/jobsmith-config.cmake
    ${PROJECT_BINARY_DIR}/jobsmith-config-version.cmake
    ${PROJECT_SOURCE_DIR}/cmake/FindCAF.cmake
    DESTINATION ${JOBSMITH_INSTALL_CMAKEDIR})
endif()

if(TARGET jobsmith)
  install(TARGETS jobsmith RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()
