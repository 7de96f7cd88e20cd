use super::*;

#[test]
fn skills_from_flags() {
    let s = parse_skill("summarize:Summarize text").unwrap();
    assert_eq!(
        (s.id.as_str(), s.name.as_str()),
        ("summarize", "Summarize text")
    );
    let s = parse_skill("upper").unwrap();
    assert_eq!((s.id.as_str(), s.name.as_str()), ("upper", "upper"));
    let err = parse_skill("Bad Skill").unwrap_err();
    assert!(format!("{err:#}").contains("skill id"), "{err:#}");
    assert!(card_of("", None, &["upper".into()]).is_err());
    assert!(card_of("w", None, &[]).is_err());
    let card = card_of("w", Some("d"), &["a".into(), "b:B".into()]).unwrap();
    assert_eq!(skill_ids(&card), "a, b");
}

#[test]
fn cards_from_files_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("card.json");
    std::fs::write(&path, "{not json").unwrap();
    let err = format!("{:#}", card_from_file(&path).unwrap_err());
    assert!(err.contains("is not an agent card"), "{err}");
    std::fs::write(&path, r#"{"name": "x", "skills": []}"#).unwrap();
    let err = format!("{:#}", card_from_file(&path).unwrap_err());
    assert!(err.contains("1 to 32 skills"), "{err}");
    std::fs::write(
        &path,
        r#"{"name": "x", "skills": [{"id": "upper", "name": "Upper"}]}"#,
    )
    .unwrap();
    assert_eq!(card_from_file(&path).unwrap().skills[0].id, "upper");
}

#[test]
fn agent_views_parse_leniently() {
    let v: AgentView = serde_json::from_value(serde_json::json!({
        "uid": "u1", "name": null, "liveness": "alive", "breaker": "half-open",
        "card": {"name": "W", "skills": [{"id": "upper", "name": "Upper"}]},
        "card_version": 3, "future_field": true
    }))
    .unwrap();
    assert_eq!(v.liveness.as_deref(), Some("alive"));
    assert_eq!(v.card.map(|c| c.skills.len()), Some(1));
}
