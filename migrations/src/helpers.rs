//! Table-building helpers shared by the migrations.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

/// A table holding one tenant's rows: uuid primary key plus `tenant_id`.
pub fn tenant_table(name: &'static str) -> TableCreateStatement {
    Table::create()
        .table(name)
        .if_not_exists()
        .col(uuid("id").primary_key())
        .col(uuid("tenant_id"))
        .foreign_key(
            ForeignKey::create()
                .from(name, "tenant_id")
                .to("tenants", "id")
                .on_delete(ForeignKeyAction::Cascade),
        )
        .to_owned()
}

pub fn index(table: &'static str, name: &str, cols: &[&'static str]) -> IndexCreateStatement {
    let mut idx = Index::create();
    idx.name(name).table(table).if_not_exists();
    for col in cols {
        idx.col(*col);
    }
    idx.to_owned()
}

/// The PostgreSQL row-level-security policy of a tenant table: rows of the
/// tenant named by the transaction setting `trellis.tenant_id`, for the
/// `trellis_tenant` role (see m0003).
pub fn tenant_wall_sql(table: &str) -> String {
    format!(
        "ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
         DROP POLICY IF EXISTS tenant_wall ON {table};
         CREATE POLICY tenant_wall ON {table} TO trellis_tenant
           USING (tenant_id = NULLIF(current_setting('trellis.tenant_id', true), '')::uuid)
           WITH CHECK (tenant_id = NULLIF(current_setting('trellis.tenant_id', true), '')::uuid);"
    )
}
