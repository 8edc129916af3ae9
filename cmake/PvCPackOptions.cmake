# Read by cpack for each generator (CPACK_PROJECT_CONFIG_FILE in cmake/PvInstall.cmake).
# The .deb's conffiles (deploy/debian/conffiles) and its units' paths assume the prefix /usr, where
# the config lives in /etc/pv: refuse another one rather than build a package that lies.
if(CPACK_GENERATOR STREQUAL "DEB")
  foreach(_var CPACK_INSTALL_PREFIX CPACK_PACKAGING_INSTALL_PREFIX)
    if(NOT "${${_var}}" STREQUAL "/usr")
      message(FATAL_ERROR "pv's .deb is built with ${_var}=/usr, not '${${_var}}'")
    endif()
  endforeach()
endif()
