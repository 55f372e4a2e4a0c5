use super::*;

#[test]
fn dreamfactory_csv_json_and_tsv_read_the_same_rows() {
    let csv = "id,name,first_name,last_name,last_login_date,email,password,is_sys_admin,is_active,phone,remember_token\n\
               1,Jane Doe,Jane,Doe,2024-05-01 12:30:00,Jane@Example.com,$2y$10$abc,1,1,555,\"x,y\"\n\
               2,,,,,bob@example.com,,0,0,,\n";
    let json = r#"{"resource":[
        {"id":1,"name":"Jane Doe","first_name":"Jane","last_name":"Doe","last_login_date":"2024-05-01 12:30:00",
         "email":"Jane@Example.com","password":"$2y$10$abc","is_sys_admin":true,"is_active":true,"phone":"555"},
        {"id":2,"name":null,"first_name":null,"last_name":null,"email":"bob@example.com","is_sys_admin":false,"is_active":false}
    ]}"#;
    let tsv = "id\tname\tfirst_name\tlast_name\tlast_login_date\temail\tpassword\tis_sys_admin\tis_active\n\
               1\tJane Doe\tJane\tDoe\t2024-05-01 12:30:00\tJane@Example.com\t$2y$10$abc\t1\t1\n\
               2\tNULL\tNULL\tNULL\tNULL\tbob@example.com\tNULL\t0\t0\n";
    for (text, format) in [
        (csv, "CSV"),
        (json, "JSON {\"resource\": […]}"),
        (tsv, "tab-separated"),
    ] {
        let read = read(Source::Dreamfactory, text).unwrap();
        assert_eq!(read.format, format);
        assert!(read.refused.is_empty(), "{format}: {:?}", read.refused);
        let [jane, bob] = &read.rows[..] else {
            panic!("{format}: {:?}", read.rows)
        };
        assert_eq!(jane.record, 1);
        assert_eq!(jane.id, Some(1));
        assert_eq!(jane.email.as_deref(), Some("Jane@Example.com"));
        assert_eq!(jane.password.as_deref(), Some("$2y$10$abc"));
        assert_eq!(jane.name.as_deref(), Some("Jane Doe"));
        assert!(jane.is_sys_admin && jane.is_active);
        assert_eq!(jane.last_login_at, Some(1_714_566_600));
        assert_eq!(bob.record, 2);
        assert_eq!(bob.password, None, "{format}");
        assert_eq!(bob.name, None, "{format}");
        assert!(!bob.is_active && !bob.is_sys_admin);
    }
}

#[test]
fn django_dumpdata_and_auth_user_csv() {
    let dumpdata = r#"[
      {"model": "auth.user", "pk": 7, "fields": {"password": "pbkdf2_sha256$870000$salt$aGFzaA==",
       "last_login": null, "is_superuser": true, "username": "admin", "first_name": "", "last_name": "",
       "email": "admin@example.com", "is_staff": true, "is_active": true,
       "date_joined": "2024-01-02T03:04:05.678Z", "groups": [], "user_permissions": []}},
      {"model": "auth.group", "pk": 1, "fields": {"name": "editors"}}
    ]"#;
    let read_json = read(Source::Django, dumpdata).unwrap();
    assert_eq!(read_json.format, "JSON dumpdata");
    let [admin] = &read_json.rows[..] else {
        panic!("{:?}", read_json.rows)
    };
    assert_eq!(admin.id, Some(7));
    assert_eq!(admin.username.as_deref(), Some("admin"));
    assert!(admin.is_sys_admin);
    assert_eq!(admin.first_name, None);
    assert_eq!(admin.created_at, Some(1_704_164_645));
    assert_eq!(read_json.refused.len(), 1);
    assert_eq!(read_json.refused[0].record, 2);
    assert!(read_json.refused[0].reason.contains("auth.group"));

    let csv = "id,password,last_login,is_superuser,username,first_name,last_name,email,is_staff,is_active,date_joined\n\
               7,pbkdf2_sha256$870000$salt$aGFzaA==,,t,admin,,,admin@example.com,t,t,2024-01-02 05:04:05.678+02\n\
               x8,pbkdf2_sha256$1$s$aGFzaA==,,f,eve,,,eve@example.com,f,maybe,2024-01-02\n";
    let read_csv = read(Source::Django, csv).unwrap();
    assert_eq!(read_csv.rows.len(), 1);
    assert_eq!(read_csv.rows[0].created_at, Some(1_704_164_645));
    assert!(read_csv.rows[0].is_sys_admin);
    assert_eq!(read_csv.refused[0].record, 2);
    assert!(read_csv.refused[0].reason.contains("not an integer"));
}

#[test]
fn bad_files_and_values() {
    assert!(read(Source::Django, "").is_err());
    assert!(read(Source::Django, "{\"users\": []}").is_err());
    assert!(read(Source::Django, "[1, 2").is_err());
    let read = read(
        Source::Dreamfactory,
        "id,email,is_active\n1,a@b.c,perhaps\n2,c@d.e\n3,e@f.g,yes\n",
    )
    .unwrap();
    assert_eq!(read.rows.len(), 1);
    assert_eq!(read.rows[0].id, Some(3));
    let reasons: Vec<&str> = read.refused.iter().map(|r| r.reason.as_str()).collect();
    assert!(reasons[0].contains("not a boolean"), "{reasons:?}");
    assert!(reasons[1].contains("2 fields"), "{reasons:?}");
}

#[test]
fn timestamps_in_each_systems_form() {
    assert_eq!(timestamp("1970-01-01 00:00:00"), Some(0));
    assert_eq!(timestamp("1970-01-01T00:00:10Z"), Some(10));
    assert_eq!(timestamp("1970-01-01T01:00:00+01:00"), Some(0));
    assert_eq!(timestamp("1970-01-01 00:00:00.999-0130"), Some(5400));
    assert_eq!(timestamp("1970-01-02"), Some(86_400));
    assert_eq!(timestamp("yesterday"), None);
    assert_eq!(timestamp("2024-13-01 00:00:00"), None);
}

#[test]
fn mysql_escapes() {
    assert_eq!(unescape_mysql(r"a\tb\nc\\d"), "a\tb\nc\\d");
}
