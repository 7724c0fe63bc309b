store_pg.o: server/store_pg.c server/store_impl.h server/store.h \
 server/job_state.h core/util/sb_error.h \
 /usr/include/postgresql/libpq-fe.h \
 /usr/include/postgresql/postgres_ext.h \
 /usr/include/postgresql/pg_config_ext.h server/clock.h
server/store_impl.h:
server/store.h:
server/job_state.h:
core/util/sb_error.h:
/usr/include/postgresql/libpq-fe.h:
/usr/include/postgresql/postgres_ext.h:
/usr/include/postgresql/pg_config_ext.h:
server/clock.h:
