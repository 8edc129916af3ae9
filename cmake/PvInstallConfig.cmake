# Runs at install time (install(CODE) in cmake/PvInstall.cmake, for `cmake --install` and cpack), with
# CMAKE_INSTALL_PREFIX the prefix being installed to. Places the config, the empty catalog directory
# and the systemd units generated from deploy/systemd/ with that prefix's paths.
#
# In: PV_SOURCE_DIR, PV_STAGE_DIR (where the units are generated), PV_INSTALL_BINDIR,
# PV_INSTALL_DOCDIR, PV_INSTALL_UNITDIR (relative to the prefix).

string(REGEX REPLACE "/+$" "" _prefix "${CMAKE_INSTALL_PREFIX}")
# GNUInstallDirs' rule for the configuration directory: /etc for the prefixes / and /usr, /etc/opt/...
# for /opt/..., <prefix>/etc otherwise.
if(_prefix STREQUAL "" OR _prefix STREQUAL "/usr")
  set(_sysconfdir "/etc")
elseif(_prefix MATCHES "^/opt/")
  set(_sysconfdir "/etc${_prefix}")
else()
  set(_sysconfdir "${_prefix}/etc")
endif()

set(PV_BINDIR "${_prefix}/${PV_INSTALL_BINDIR}")
set(PV_DOCDIR "${_prefix}/${PV_INSTALL_DOCDIR}")
set(PV_CONFIG_FILE "${_sysconfdir}/pv/pv.yaml")
file(READ "${PV_SOURCE_DIR}/deploy/systemd/hardening.inc" PV_HARDENING)
string(STRIP "${PV_HARDENING}" PV_HARDENING)

set(_units "${PV_STAGE_DIR}/systemd")
file(REMOVE_RECURSE "${_units}")
configure_file("${PV_SOURCE_DIR}/deploy/systemd/pv-ingest.service.in" "${_units}/pv-ingest.service" @ONLY)
configure_file("${PV_SOURCE_DIR}/deploy/systemd/pv-dispatcher.service.in" "${_units}/pv-dispatcher.service" @ONLY)
foreach(PV_CHANNEL email sms push)
  configure_file("${PV_SOURCE_DIR}/deploy/systemd/pv-worker.service.in" "${_units}/pv-worker-${PV_CHANNEL}.service"
                 @ONLY)
endforeach()
file(INSTALL DESTINATION "${_prefix}/${PV_INSTALL_UNITDIR}" TYPE FILE
     FILES "${_units}/pv-ingest.service" "${_units}/pv-dispatcher.service" "${_units}/pv-worker-email.service"
           "${_units}/pv-worker-sms.service" "${_units}/pv-worker-push.service")

# An edited config is never overwritten by a later `cmake --install` (the .deb's dpkg asks instead: it is
# a conffile there).
if(EXISTS "$ENV{DESTDIR}${PV_CONFIG_FILE}")
  message(STATUS "Kept: $ENV{DESTDIR}${PV_CONFIG_FILE} (the shipped one is deploy/config/pv.yaml)")
else()
  file(INSTALL DESTINATION "${_sysconfdir}/pv" TYPE FILE FILES "${PV_SOURCE_DIR}/deploy/config/pv.yaml")
endif()
file(MAKE_DIRECTORY "$ENV{DESTDIR}${_sysconfdir}/pv/catalog")
