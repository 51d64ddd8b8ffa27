/** An organisation's own rule file that blocks mail naming the secret project Zwaan (reload, metrics and SIGHUP tests). */
export const BLOCK_RULE = `rules:
  - id: project-zwaan
    description:
      nl: Het geheime project Zwaan mag de organisatie niet verlaten
      en: The secret project Zwaan must not leave the organisation
    detector: { kind: wordlist, terms: [projectzwaan] }
    scopes: [subject, body]
    action: block
`;
