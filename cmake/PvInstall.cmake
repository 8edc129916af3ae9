# What `cmake --install` puts where, and the .deb `cpack -G DEB` builds from it (docs/operations.md
# "Installing"; checked by tests/deploy/install_test.sh). With the default prefix /usr/local:
#
#   bin/                  pv-ingest, pv-dispatcher, email-worker, sms-worker, push-worker, pvctl
#   etc/pv/pv.yaml        the deployment config (deploy/config/pv.yaml); /etc/pv with prefix /usr
#   etc/pv/catalog/       empty: the operator's campaigns go here (catalog_dir in pv.yaml)
#   lib/systemd/system/   pv-ingest, pv-dispatcher, pv-worker-{email,sms,push}.service
#   share/doc/pv/         README.md, the operator's docs, examples/catalog (the demo campaigns)
#
# Left out on purpose: pv-dev-broker (librdkafka's in-memory mock cluster, for development and tests:
# it loses everything at exit, so nothing an operator should run), pvctl's and the services' tests,
# the bench and fuzz binaries. The demo catalog is an example only: installed as the live catalog,
# its campaigns would accept triggers for project "demo" on a production system.
include(GNUInstallDirs)

install(TARGETS pv-ingest pv-dispatcher email-worker sms-worker push-worker pvctl
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

install(FILES README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(FILES docs/api.md docs/architecture.md docs/configuration.md docs/configuration-dispatcher.md
              docs/configuration-pvctl.md docs/configuration-workers.md docs/dispatcher.md docs/operations.md
        DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(DIRECTORY catalog/demo/ DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples/catalog)

set(PV_SYSTEMD_UNITDIR "lib/systemd/system" CACHE PATH
    "Where the systemd units go, relative to the install prefix")

# The config, the catalog directory and the units are placed at install time, not configure time: the
# paths inside the units (ExecStart, PV_CONFIG) and /etc versus <prefix>/etc follow the prefix actually
# installed to (`cmake --install --prefix`, cpack's /usr), whatever the build was configured with.
install(CODE "
  set(PV_SOURCE_DIR \"${PROJECT_SOURCE_DIR}\")
  set(PV_STAGE_DIR \"${PROJECT_BINARY_DIR}/install-stage\")
  set(PV_INSTALL_BINDIR \"${CMAKE_INSTALL_BINDIR}\")
  set(PV_INSTALL_DOCDIR \"${CMAKE_INSTALL_DOCDIR}\")
  set(PV_INSTALL_UNITDIR \"${PV_SYSTEMD_UNITDIR}\")
  include(\"${PROJECT_SOURCE_DIR}/cmake/PvInstallConfig.cmake\")
")

# The .deb: `cpack -G DEB` in the build directory (the install above, staged under DESTDIR with prefix
# /usr). Its Depends come from dpkg-shlibdeps on the binaries (librdkafka1, libhiredis0.14, libfmt9,
# libyaml-cpp0.7, libcurl4, libssl3, libdate-tz3, ...) plus what they open at run time: tzdata (send
# windows), ca-certificates (the providers' HTTPS) and passwd (useradd in postinst).
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME pv)
set(CPACK_PACKAGE_VERSION "${PV_VERSION}")
set(CPACK_PACKAGE_VENDOR "pv")
set(CPACK_PACKAGE_CONTACT "pv maintainers <pv@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "pv: transactional email, SMS and push from one HTTP endpoint through Kafka")
string(CONCAT CPACK_PACKAGE_DESCRIPTION
       "pv-ingest accepts triggers over HTTP and publishes them to Kafka; pv-dispatcher renders and routes\n"
       "them; email-worker, sms-worker and push-worker deliver through the providers with Redis dedupe.\n"
       "pvctl manages API keys, topics, replays and suppressions. systemd units are included, not enabled.")
set(CPACK_STRIP_FILES ON)
# Staged under DESTDIR with the prefix /usr (CPACK_INSTALL_PREFIX: with DESTDIR, cpack installs with
# it rather than with CPACK_PACKAGING_INSTALL_PREFIX), so that the install-time paths above are the
# package's: /usr/bin in the units, /etc/pv for the config, which must never reach this machine's /etc.
set(CPACK_SET_DESTDIR ON)
set(CPACK_INSTALL_PREFIX /usr)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "tzdata, ca-certificates, passwd")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${PROJECT_SOURCE_DIR}/deploy/debian/postinst ${PROJECT_SOURCE_DIR}/deploy/debian/prerm
    ${PROJECT_SOURCE_DIR}/deploy/debian/postrm ${PROJECT_SOURCE_DIR}/deploy/debian/conffiles)
# The conffiles list names /etc/pv/pv.yaml: only true with the prefix /usr.
set(CPACK_PROJECT_CONFIG_FILE "${PROJECT_SOURCE_DIR}/cmake/PvCPackOptions.cmake")
include(CPack)
