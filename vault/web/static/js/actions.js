// The access log in words for people, not technicians: the audit action
// names (tests/api/audit_vocabulary.json) as short phrases, and roles as
// words. An action without a phrase here is shown as its code.
import { lang } from './i18n.js';

const ACTIONS = {
  nl: {
    'item.store': 'sloeg een stuk op', 'login': 'probeerde zich aan te melden',
    'accounts.change_password': 'wijzigde het wachtwoord', 'accounts.confirm_totp': 'zette de inlogcodes aan',
    'accounts.create_invitation': 'nodigde iemand uit voor een account', 'accounts.disable_totp': 'zette de inlogcodes uit',
    'accounts.end_my_session': 'beëindigde een eigen sessie', 'accounts.my_sessions': 'bekeek de eigen sessies',
    'accounts.start_totp': 'begon met inlogcodes instellen',
    'directory.add_manager': 'wees een locatiemanager toe', 'directory.add_staff': 'voegde een medewerker aan een groep toe',
    'directory.block': 'blokkeerde een account', 'directory.create_group': 'maakte een groep aan',
    'directory.create_location': 'maakte een locatie aan', 'directory.create_person': 'maakte een persoon aan',
    'directory.issue_token': 'gaf een toegangstoken uit', 'directory.remove_staff': 'haalde een medewerker uit een groep',
    'directory.revoke_tokens': 'trok toegangstokens in', 'directory.unblock': 'hief een blokkade op',
    'signin.invitation': 'nam een uitnodiging aan', 'signin.oidc': 'meldde zich aan via de organisatie',
    'signin.oidc_start': 'begon met aanmelden via de organisatie', 'signin.password': 'meldde zich aan met wachtwoord',
    'accounts.me': 'opende de app', 'accounts.sign_out': 'meldde zich af',
    'audit.child_access_log': 'bekeek wie het kind zag', 'audit.verify_chain': 'controleerde het auditlog',
    'audit.touched': 'vroeg op wat een account of token raakte',
    'consents.change': 'wijzigde een toestemming', 'consents.read': 'bekeek de toestemmingen',
    'directory.add_guardian': 'koppelde een ouder', 'directory.change_guardian': 'wijzigde een ouder',
    'directory.remove_guardian': 'ontkoppelde een ouder', 'directory.create_child': 'schreef het kind in',
    'directory.get_child': 'bekeek de gegevens van het kind', 'directory.rectify_child': 'corrigeerde de gegevens van het kind',
    'directory.set_mentor': 'wees een mentor toe', 'directory.set_placement': 'legde het contract vast',
    'export.create': 'maakte een export', 'export.use': 'downloadde een export',
    'handover.issue': 'maakte een overdrachtslink', 'handover.use': 'opende een overdrachtslink',
    'items.create': 'voegde iets toe', 'items.listing': 'bekeek de tijdlijn', 'items.read': 'bekeek een stuk',
    'items.rectify': 'corrigeerde een stuk', 'items.remove': 'verwijderde een stuk', 'items.replace_file': 'verving een bestand',
    'link.issue': 'maakte een link', 'link.use': 'bekeek een foto of bestand',
    'publication.issue': 'maakte een publicatielink', 'publication.use': 'opende een publicatielink',
    'reports.child': 'maakte een overzicht van de gegevens', 'reports.me': 'maakte een overzicht van eigen gegevens',
    'requests.answer': 'beantwoordde een verzoek', 'requests.file': 'diende een verzoek in', 'requests.list': 'bekeek de verzoeken',
    'retention.erasure': 'liet gegevens wissen', 'retention.lift_hold': 'hief een bewaarplicht op',
    'retention.place_hold': 'legde een bewaarplicht op', 'retention.run': 'liet de bewaartermijnen toepassen',
    'retention.view': 'bekeek de bewaartermijnen', 'rights.certificates': 'bekeek de vernietigingsverklaringen',
    'rights.lift_restriction': 'hief een beperking op', 'rights.restrict': 'beperkte de verwerking',
  },
  en: {
    'item.store': 'stored a record', 'login': 'tried to sign in',
    'accounts.change_password': 'changed the password', 'accounts.confirm_totp': 'turned on one-time codes',
    'accounts.create_invitation': 'invited someone to an account', 'accounts.disable_totp': 'turned off one-time codes',
    'accounts.end_my_session': 'ended one of their sessions', 'accounts.my_sessions': 'looked at their sessions',
    'accounts.start_totp': 'began setting up one-time codes',
    'directory.add_manager': 'assigned a location manager', 'directory.add_staff': 'added a staff member to a group',
    'directory.block': 'blocked an account', 'directory.create_group': 'created a group',
    'directory.create_location': 'created a location', 'directory.create_person': 'created a person',
    'directory.issue_token': 'issued an access token', 'directory.remove_staff': 'removed a staff member from a group',
    'directory.revoke_tokens': 'revoked access tokens', 'directory.unblock': 'lifted a block',
    'signin.invitation': 'accepted an invitation', 'signin.oidc': "signed in through the organisation",
    'signin.oidc_start': "began signing in through the organisation", 'signin.password': 'signed in with a password',
    'accounts.me': 'opened the app', 'accounts.sign_out': 'signed out',
    'audit.child_access_log': 'looked at who saw the child', 'audit.verify_chain': 'verified the audit log',
    'audit.touched': 'asked what an account or token touched',
    'consents.change': 'changed a consent', 'consents.read': 'looked at the consents',
    'directory.add_guardian': 'linked a parent', 'directory.change_guardian': 'changed a parent',
    'directory.remove_guardian': 'unlinked a parent', 'directory.create_child': 'enrolled the child',
    'directory.get_child': "looked at the child's details", 'directory.rectify_child': "corrected the child's details",
    'directory.set_mentor': 'assigned a mentor', 'directory.set_placement': 'recorded the contract',
    'export.create': 'made an export', 'export.use': 'downloaded an export',
    'handover.issue': 'made a handover link', 'handover.use': 'opened a handover link',
    'items.create': 'added something', 'items.listing': 'looked at the timeline', 'items.read': 'looked at a record',
    'items.rectify': 'corrected a record', 'items.remove': 'removed a record', 'items.replace_file': 'replaced a file',
    'link.issue': 'made a link', 'link.use': 'viewed a photo or file',
    'publication.issue': 'made a publication link', 'publication.use': 'opened a publication link',
    'reports.child': 'made a report of the records', 'reports.me': 'made a report of their own data',
    'requests.answer': 'answered a request', 'requests.file': 'filed a request', 'requests.list': 'looked at the requests',
    'retention.erasure': 'had records erased', 'retention.lift_hold': 'lifted a legal hold',
    'retention.place_hold': 'placed a legal hold', 'retention.run': 'applied the retention periods',
    'retention.view': 'looked at the retention periods', 'rights.certificates': 'looked at the destruction certificates',
    'rights.lift_restriction': 'lifted a restriction', 'rights.restrict': 'restricted processing',
  },
};

const ROLES = {
  nl: { guardian: 'ouder', staff: 'pedagogisch medewerker', administration: 'administratie', location_manager: 'locatiemanager',
    privacy_officer: 'privacyfunctionaris', inspector: 'inspecteur', admin: 'beheerder', system: 'het systeem' },
  en: { guardian: 'parent', staff: 'childcare worker', administration: 'administration', location_manager: 'location manager',
    privacy_officer: 'privacy officer', inspector: 'inspector', admin: 'administrator', system: 'the system' },
};

export function actionWords(action) {
  return ACTIONS[lang()][action] || action;
}

export function roleWords(role) {
  if (!role) return '–';
  return ROLES[lang()][role] || role;
}
