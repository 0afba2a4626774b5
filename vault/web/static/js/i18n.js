// Dutch by default, English by choice (kept in localStorage: not a secret).
const WORDS = {
  nl: {
    skip: 'Naar de inhoud', menu: 'Hoofdmenu', language: 'English', signOut: 'Afmelden',
    signInTitle: 'Aanmelden', email: 'E-mailadres', password: 'Wachtwoord', totp: 'Code uit uw app (6 cijfers)',
    signIn: 'Aanmelden', signInFailed: 'Aanmelden lukte niet: e-mailadres of wachtwoord klopt niet.',
    totpNeeded: 'Vul de code uit uw authenticator-app in.', tooMany: 'Te veel pogingen. Probeer het over {s} seconden opnieuw.',
    loading: 'Laden…', children: 'Mijn kinderen', noChildren: 'Er zijn (nog) geen kinderen aan uw account gekoppeld.',
    timeline: 'Tijdlijn', consents: 'Toestemmingen', export: 'Export', accessLog: 'Wie zag mijn kind',
    requests: 'Verzoeken', more: 'Meer laden', nothingYet: 'Nog niets te zien.', endOfTimeline: 'Dit is alles.',
    photo: 'Foto', video: 'Video', diary: 'Dagboek', observation: 'Observatie', medical: 'Medisch',
    invoice: 'Factuur', annual_statement: 'Jaaropgave', contract: 'Contract', child_protection: 'Kindveiligheid',
    open: 'Openen', close: 'Sluiten', original: 'Origineel tonen', originalShown: 'Het origineel wordt getoond.',
    download: 'Downloaden', playerError: 'De video kan niet worden afgespeeld: {m}',
    unavailable: 'Niet beschikbaar', group: 'Groep', born: 'Geboren',
    bannerEnded: 'Het contract van {name} eindigde op {end}. Tot en met {until} kunt u alles bekijken en een export maken; daarna wordt het gearchiveerd.',
    banner: 'Het contract van {name} eindigt op {end}. Tot en met {until} kunt u alles bekijken en een export maken; daarna wordt het gearchiveerd.',
    consentNames: { photo: "Foto's en video's", diary: 'Dagboek', external_publication: 'Publicatie buiten de opvang (website, nieuwsbrief)', school_handover: 'Overdracht aan de school' },
    given: 'Gegeven', notGiven: 'Niet gegeven', grant: 'Toestemming geven', withdraw: 'Intrekken',
    consentColumn: 'Toestemming', consentState: 'Stand', consentChange: 'Wijzigen', history: 'Geschiedenis', byYou: 'door u', changedAt: 'Gewijzigd op',
    withdrawTitle: 'Toestemming intrekken: wat er gebeurt',
    withdrawEffects: {
      photo: ["Er worden geen nieuwe foto's of video's van {name} meer opgeslagen; de leidsters zien dat vóór de camera erbij komt.",
        "Groepsfoto's en video's waarop {name} staat, zijn vanaf nu niet meer te zien voor andere gezinnen.",
        "U ziet zelf de bestaande foto's en video's van {name} nog, en u kunt ze exporteren.",
        'U kunt de toestemming later opnieuw geven.'],
      diary: ['Er worden geen nieuwe dagboekberichten over {name} meer geschreven.', 'Bestaande berichten blijven voor u zichtbaar.'],
      external_publication: ['Foto\'s van {name} worden niet meer gepubliceerd; links die al gedeeld zijn, werken niet meer.'],
      school_handover: ['Overdrachtslinks naar de school werken niet meer en er worden geen nieuwe gemaakt.'],
    },
    confirmWithdraw: 'Ja, intrekken', cancel: 'Annuleren', withdrawn: 'De toestemming is ingetrokken.', granted: 'De toestemming is gegeven.',
    exportIntro: 'Een ZIP-bestand met alles wat u van {name} mag zien: een index.html om offline te lezen, het dagboek en de originele foto\'s en video\'s.',
    makeExport: 'Export maken', exportReady: 'De export is klaar: {size}. De link werkt tot {until}; een afgebroken download gaat verder waar hij stopte.',
    downloadExport: 'Export downloaden ({size})', downloadDirect: 'Direct downloaden (zonder voortgang)',
    downloadProgress: 'Voortgang van de download', downloaded: 'De export is gedownload.',
    accessIntro: 'Iedere keer dat iemand gegevens van {name} bekeek of probeerde te bekijken.',
    at: 'Wanneer', who: 'Wie', role: 'Rol', what: 'Wat', outcome: 'Uitkomst', noEvents: 'Nog niemand.', outcomeOk: 'gelukt', outcomeRefused: 'geweigerd',
    report: 'Overzicht van de gegevens (HTML)', myReport: 'Mijn gegevens (HTML)', reportFailed: 'Het overzicht is nog niet beschikbaar.',
    newRequest: 'Verzoek aan de privacyfunctionaris', requestType: 'Soort verzoek', note: 'Toelichting (optioneel)', send: 'Versturen',
    requestTypes: { access: 'Inzage', rectification: 'Correctie', erasure: 'Verwijdering', restriction: 'Beperking', objection: 'Bezwaar', portability: 'Overdraagbaarheid' },
    requestSent: 'Uw verzoek is ontvangen; het antwoord komt uiterlijk {due}.', myRequests: 'Mijn verzoeken',
    status: 'Status', received: 'Ontvangen', due: 'Uiterlijk', overdue: 'Te laat', open_: 'Open', answered: 'Beantwoord',
    staffTitle: 'Mijn groepen', consentAtGlance: 'Mag op de foto', yes: 'Ja', no: 'Nee',
    upload: "Foto's of video uploaden", chooseFiles: "Kies foto's of een video", tagFor: 'Kinderen op {file}',
    contractEnded: 'Nee – contract beëindigd op {end}', contractEndedFor: 'Geweigerd: het contract van {names} is beëindigd; er komt niets meer bij.',
    noPhotoConsent: 'geen toestemming voor foto\'s', consentMissingFor: 'Geweigerd: voor {names} is geen toestemming voor foto\'s gegeven.',
    uploadKind: 'Soort', kindMedia: "Foto's of video", kindObservation: 'Observatie (mentor)', diaryPhotos: "Foto's bij dit bericht",
    uploadAll: 'Uploaden', uploaded: 'Opgeslagen', uploadedSome: '{stored} opgeslagen, {refused} geweigerd: zie per bestand waarom.', uploadNeedsTag: 'Kies voor elk bestand minstens één kind.',
    diaryEntry: 'Dagboekbericht', diaryChild: 'Kind', diaryDate: 'Datum', diaryText: 'Tekst', diarySaved: 'Het bericht is opgeslagen.',
    officerTitle: 'Privacyfunctionaris', register: 'Verzoekenregister', verify: 'Auditlog controleren',
    verifyOk: 'Het auditlog is intact: {n} gebeurtenissen, kop {head}.', verifyBad: 'Het auditlog is NIET intact ({n} gebeurtenissen gecontroleerd).',
    certificates: 'Vernietigingsverklaringen', childId: 'Kind-id', show: 'Tonen', noCertificates: 'Geen verklaringen.',
    category: 'Categorie', destroyedAt: 'Vernietigd op', items: 'Stukken', type: 'Soort', child: 'Kind',
    breach: 'Wat heeft een account of token aangeraakt?', aboutWhom: 'Over wie',
    breachIntro: 'Uit het auditlog: welke kinderen en stukken één account (of één token ervan) tussen twee momenten raakte. Uw vraag komt zelf ook in het auditlog.',
    personId: 'Persoon-id (account)', tokenId: 'Token-id (de 16 tekens na kl_)', whoHint: 'Vul één van beide in.',
    since: 'Vanaf', until: 'Tot', zoneHint: 'Tijden in uw tijdzone: {zone} ({offset}).', ask: 'Opvragen',
    oneOfTwo: 'Vul een persoon-id óf een token-id in, niet allebei.', momentsNeeded: 'Vul beide momenten in; "Vanaf" ligt vóór "Tot".',
    thisAccount: 'dit account', thisToken: 'dit token',
    touchedNone: 'Tussen {since} en {until} heeft {who} niets gedaan.',
    touchedSummary: 'Tussen {since} en {until} heeft {who} {events} iets gevraagd ({refused} keer geweigerd), het eerst op {first}, het laatst op {last}. Daarbij zijn {children} en {items} geraakt.',
    oneChild: '1 kind', manyChildren: '{n} kinderen', oneItem: '1 stuk', manyItems: '{n} stukken',
    oneRequest: '1 keer', manyRequests: '{n} keer',
    unknownId: 'Dit id is nu niet bekend in de directory (verkeerd getypt, of het account of token bestaat niet meer); het auditlog bewaart wat het deed.',
    childrenTouched: 'Geraakte kinderen', itemsTouched: 'Geraakte stukken', actionsDone: 'Wat er gebeurde',
    name: 'Naam', itemId: 'Stuk-id', times: 'Aantal keer', namesCapped: 'Namen getoond van de eerste {n} kinderen.',
    noRequests: 'Geen verzoeken.', noRole: 'Deze app heeft (nog) geen scherm voor uw rol.',
    errors: {
      consent_missing: 'Geweigerd: voor een getagd kind is geen toestemming voor foto\'s gegeven.',
      unsupported_type: 'Geweigerd: dit soort bestand wordt niet geaccepteerd.',
      too_large: 'Geweigerd: het bestand is te groot.',
      forbidden: 'U mag dit niet doen.', not_found: 'Niet gevonden.', outside_window: 'Niet (meer) zichtbaar.',
      unauthenticated: 'U bent afgemeld. Meld u opnieuw aan.', blocked: 'Dit account is geblokkeerd.',
      link_expired: 'De link is verlopen.', link_invalid: 'De link klopt niet.', destroyed: 'Dit is vernietigd.',
      restricted: 'De verwerking van de gegevens van dit kind is beperkt.', rate_limited: 'Te veel verzoeken; probeer het zo opnieuw.',
      storage_unavailable: 'De opslag is even niet bereikbaar; er is niets opgeslagen. Probeer het zo opnieuw.',
      invalid_input: 'De invoer klopt niet.', conflict: 'Dat kan nu niet.', network: 'Geen verbinding met de server.',
    },
  },
  en: {
    skip: 'Skip to content', menu: 'Main menu', language: 'Nederlands', signOut: 'Sign out',
    signInTitle: 'Sign in', email: 'Email address', password: 'Password', totp: 'Code from your app (6 digits)',
    signIn: 'Sign in', signInFailed: 'Signing in failed: the email address or password is wrong.',
    totpNeeded: 'Enter the code from your authenticator app.', tooMany: 'Too many attempts. Try again in {s} seconds.',
    loading: 'Loading…', children: 'My children', noChildren: 'No children are linked to your account (yet).',
    timeline: 'Timeline', consents: 'Consents', export: 'Export', accessLog: 'Who saw my child',
    requests: 'Requests', more: 'Load more', nothingYet: 'Nothing to see yet.', endOfTimeline: 'That is everything.',
    photo: 'Photo', video: 'Video', diary: 'Diary', observation: 'Observation', medical: 'Medical',
    invoice: 'Invoice', annual_statement: 'Annual statement', contract: 'Contract', child_protection: 'Child protection',
    open: 'Open', close: 'Close', original: 'Show original', originalShown: 'The original is shown.',
    download: 'Download', playerError: 'The video cannot be played: {m}',
    unavailable: 'Not available', group: 'Group', born: 'Born',
    bannerEnded: "{name}'s contract ended on {end}. Until {until} inclusive you can see everything and make an export; after that it is archived.",
    banner: "{name}'s contract ends on {end}. Until {until} inclusive you can see everything and make an export; after that it is archived.",
    consentNames: { photo: 'Photos and videos', diary: 'Diary', external_publication: 'Publication outside the centre (website, newsletter)', school_handover: 'Handover to the school' },
    given: 'Given', notGiven: 'Not given', grant: 'Give consent', withdraw: 'Withdraw',
    consentColumn: 'Consent', consentState: 'State', consentChange: 'Change', history: 'History', byYou: 'by you', changedAt: 'Changed at',
    withdrawTitle: 'Withdrawing consent: what happens',
    withdrawEffects: {
      photo: ['No new photos or videos of {name} are stored; staff see this before the camera comes out.',
        'Group photos and videos showing {name} can no longer be seen by other families, from now on.',
        'You still see the existing photos and videos of {name} yourself, and can export them.',
        'You can give consent again later.'],
      diary: ['No new diary entries about {name} are written.', 'Existing entries stay visible to you.'],
      external_publication: ['Photos of {name} are no longer published; links already shared stop working.'],
      school_handover: ['Handover links to the school stop working and no new ones are made.'],
    },
    confirmWithdraw: 'Yes, withdraw', cancel: 'Cancel', withdrawn: 'Consent was withdrawn.', granted: 'Consent was given.',
    exportIntro: "A ZIP file of everything you may see of {name}: an index.html to read offline, the diary, and the original photos and videos.",
    makeExport: 'Make an export', exportReady: 'The export is ready: {size}. The link works until {until}; a broken download resumes where it stopped.',
    downloadExport: 'Download the export ({size})', downloadDirect: 'Download directly (no progress bar)',
    downloadProgress: 'Download progress', downloaded: 'The export was downloaded.',
    accessIntro: 'Every time someone looked at, or tried to look at, the records of {name}.',
    at: 'When', who: 'Who', role: 'Role', what: 'What', outcome: 'Outcome', noEvents: 'No one yet.', outcomeOk: 'done', outcomeRefused: 'refused',
    report: 'Report of the records (HTML)', myReport: 'My data (HTML)', reportFailed: 'The report is not available yet.',
    newRequest: 'Request to the privacy officer', requestType: 'Kind of request', note: 'Note (optional)', send: 'Send',
    requestTypes: { access: 'Access', rectification: 'Rectification', erasure: 'Erasure', restriction: 'Restriction', objection: 'Objection', portability: 'Portability' },
    requestSent: 'Your request was received; the answer is due by {due}.', myRequests: 'My requests',
    status: 'Status', received: 'Received', due: 'Due', overdue: 'Overdue', open_: 'Open', answered: 'Answered',
    staffTitle: 'My groups', consentAtGlance: 'May be photographed', yes: 'Yes', no: 'No',
    upload: 'Upload photos or a video', chooseFiles: 'Choose photos or a video', tagFor: 'Children in {file}',
    contractEnded: 'No – contract ended on {end}', contractEndedFor: 'Refused: the contract of {names} has ended; nothing more is added.',
    noPhotoConsent: 'no photo consent', consentMissingFor: 'Refused: photo consent is missing for {names}.',
    uploadKind: 'Kind of record', kindMedia: 'Photos or video', kindObservation: 'Observation (mentor)', diaryPhotos: 'Photos with this entry',
    uploadAll: 'Upload', uploaded: 'Stored', uploadedSome: '{stored} stored, {refused} refused: see each file for why.', uploadNeedsTag: 'Choose at least one child for each file.',
    diaryEntry: 'Diary entry', diaryChild: 'Child', diaryDate: 'Date', diaryText: 'Text', diarySaved: 'The entry was saved.',
    officerTitle: 'Privacy officer', register: 'Request register', verify: 'Verify the audit log',
    verifyOk: 'The audit log is intact: {n} events, head {head}.', verifyBad: 'The audit log is NOT intact ({n} events checked).',
    certificates: 'Destruction certificates', childId: 'Child id', show: 'Show', noCertificates: 'No certificates.',
    category: 'Category', destroyedAt: 'Destroyed at', items: 'Items', type: 'Type', child: 'Child',
    breach: 'What did an account or token touch?', aboutWhom: 'About whom',
    breachIntro: 'From the audit log: which children and records one account (or one of its tokens) touched between two moments. Your question is recorded as well.',
    personId: 'Person id (account)', tokenId: 'Token id (the 16 characters after kl_)', whoHint: 'Fill in one of the two.',
    since: 'From', until: 'Until', zoneHint: 'Times in your time zone: {zone} ({offset}).', ask: 'Look up',
    oneOfTwo: 'Fill in a person id or a token id, not both.', momentsNeeded: 'Fill in both moments; "From" comes before "Until".',
    thisAccount: 'this account', thisToken: 'this token',
    touchedNone: 'Between {since} and {until}, {who} did nothing.',
    touchedSummary: 'Between {since} and {until}, {who} made {events} ({refused} refused), the first at {first}, the last at {last}. They touched {children} and {items}.',
    oneChild: '1 child', manyChildren: '{n} children', oneItem: '1 record', manyItems: '{n} records',
    oneRequest: '1 request', manyRequests: '{n} requests',
    unknownId: 'The directory does not know this id now (mistyped, or the account or token is gone); the audit log keeps what it did.',
    childrenTouched: 'Children touched', itemsTouched: 'Records touched', actionsDone: 'What was done',
    name: 'Name', itemId: 'Record id', times: 'Times', namesCapped: 'Names shown for the first {n} children.',
    noRequests: 'No requests.', noRole: 'This app has no screen for your role (yet).',
    errors: {
      consent_missing: 'Refused: photo consent is missing for a tagged child.',
      unsupported_type: 'Refused: this type of file is not accepted.',
      too_large: 'Refused: the file is too large.',
      forbidden: 'You may not do this.', not_found: 'Not found.', outside_window: 'Not visible (any more).',
      unauthenticated: 'You are signed out. Please sign in again.', blocked: 'This account is blocked.',
      link_expired: 'The link has expired.', link_invalid: 'The link is not valid.', destroyed: 'This was destroyed.',
      restricted: "Processing of this child's records is restricted.", rate_limited: 'Too many requests; try again shortly.',
      storage_unavailable: 'Storage is unreachable for a moment; nothing was stored. Try again shortly.',
      invalid_input: 'The input is not right.', conflict: 'That is not possible now.', network: 'No connection to the server.',
    },
  },
};

export function lang() {
  const chosen = localStorage.getItem('kluis.lang');
  return chosen === 'en' ? 'en' : 'nl';
}

export function setLang(code) {
  localStorage.setItem('kluis.lang', code);
  document.documentElement.lang = code;
}

// t('banner', {name}) or t('errors.consent_missing'); a list or map is returned as is.
export function t(key, params = {}) {
  let value = key.split('.').reduce((at, part) => (at ? at[part] : undefined), WORDS[lang()]);
  if (value === undefined) value = key;
  if (typeof value !== 'string') return value;
  return value.replace(/\{(\w+)\}/g, (_, name) => (name in params ? String(params[name]) : `{${name}}`));
}

export function errorText(code, fallback) {
  const known = WORDS[lang()].errors[code];
  return known || fallback || code;
}

export function date(iso) {
  if (!iso) return '';
  const locale = lang() === 'en' ? 'en-GB' : 'nl-NL';
  const when = iso.length === 10 ? new Date(`${iso}T12:00:00Z`) : new Date(iso);
  return when.toLocaleDateString(locale, { day: 'numeric', month: 'long', year: 'numeric', timeZone: 'Europe/Amsterdam' });
}

// Today's date in Amsterdam (YYYY-MM-DD), as the vault counts a contract's last day.
export function today() {
  return new Date().toLocaleDateString('sv-SE', { timeZone: 'Europe/Amsterdam' });
}

// A number in the reader's language: "1,5" in Dutch, "1.5" in English.
export function decimal(n, digits = 1) {
  const locale = lang() === 'en' ? 'en-GB' : 'nl-NL';
  return new Intl.NumberFormat(locale, { minimumFractionDigits: digits, maximumFractionDigits: digits }).format(n);
}

// A moment is shown in Amsterdam's time, wherever the browser is. The vault
// answers every moment in UTC (`…Z`), a photo's taken_at too (a camera's clock
// without a zone is read in uploads.camera_time_zone); a value without a zone,
// which no vault since session 12 answers, is shown as it reads.
const ZONED = /(Z|[+-]\d{2}(:?\d{2})?)$/i;

export function moment(iso) {
  if (!iso) return '';
  const locale = lang() === 'en' ? 'en-GB' : 'nl-NL';
  const zoned = ZONED.test(iso);
  return new Date(zoned ? iso : `${iso}Z`).toLocaleString(locale, { dateStyle: 'medium', timeStyle: 'short', timeZone: zoned ? 'Europe/Amsterdam' : 'UTC' });
}
