// The dashboard's messages in the API's four languages; the first of navigator.languages that
// matches one wins (the same choice the API makes from Accept-Language), English otherwise.
const MESSAGES = {
  en: {
    title: 'Janua security dashboard',
    email: 'Email', password: 'Password', signIn: 'Sign in', signInPasskey: 'Sign in with a passkey',
    mfaTitle: 'Second step', mfaCode: 'Authenticator code or backup code', verify: 'Verify',
    usePasskey: 'Use a passkey instead', signOut: 'Sign out', back: 'Back',
    notAllowed: 'This dashboard is for administrators and organization admins.',
    conn_idle: 'not connected', conn_connecting: 'connecting…', conn_live: 'live', conn_reconnecting: 'reconnecting…',
    sessions: 'Active sessions', device: 'Device', ip: 'IP', method: 'Method', created: 'Created',
    lastActive: 'Last active', current: 'this one', revoke: 'Revoke', memberSessions: 'Members’ session events',
    audit: 'Audit stream', actionPrefix: 'Action prefix (e.g. user.)', actor: 'Actor id', organization: 'Organization',
    all: 'all', when: 'When', action: 'Action', target: 'Target', details: 'Details', close: 'Close',
    chart: 'Sign-ins per minute', signins: 'sign-ins', failures: 'failures',
    adoption: 'MFA and passkey adoption', mfa: 'TOTP on', passkeys: 'with a passkey', users: 'users',
    adminOnly: 'Adoption across users is shown to administrators.', yourAccount: 'Your account',
    mfaOn: 'MFA on', mfaOff: 'MFA off', yourPasskeys: 'passkeys', addPasskey: 'Add a passkey', passkeyAdded: 'Passkey added.',
    webhooks: 'Webhook endpoints', url: 'URL', state: 'State', backlog: 'Backlog', ok: 'ok', failing: 'failing since',
    disabled: 'disabled', noWebhooks: 'No endpoints.', totalBacklog: 'Deliveries pending (all endpoints)',
    members: 'Members and roles', role: 'Role', joined: 'Joined', name: 'Name', none: 'Nothing yet.',
    admin: 'administrator', orgAdmin: 'organization admin', error: 'Something went wrong.',
  },
  es: {
    title: 'Panel de seguridad de Janua',
    email: 'Correo', password: 'Contraseña', signIn: 'Iniciar sesión', signInPasskey: 'Entrar con una llave de acceso',
    mfaTitle: 'Segundo paso', mfaCode: 'Código del autenticador o de respaldo', verify: 'Verificar',
    usePasskey: 'Usar una llave de acceso', signOut: 'Cerrar sesión', back: 'Volver',
    notAllowed: 'Este panel es para administradores y administradores de organizaciones.',
    conn_idle: 'sin conexión', conn_connecting: 'conectando…', conn_live: 'en vivo', conn_reconnecting: 'reconectando…',
    sessions: 'Sesiones activas', device: 'Dispositivo', ip: 'IP', method: 'Método', created: 'Creada',
    lastActive: 'Última actividad', current: 'esta', revoke: 'Revocar', memberSessions: 'Eventos de sesión de los miembros',
    audit: 'Registro de auditoría', actionPrefix: 'Prefijo de acción (p. ej. user.)', actor: 'Id del actor', organization: 'Organización',
    all: 'todas', when: 'Cuándo', action: 'Acción', target: 'Objetivo', details: 'Detalles', close: 'Cerrar',
    chart: 'Inicios de sesión por minuto', signins: 'inicios', failures: 'fallos',
    adoption: 'Adopción de MFA y llaves de acceso', mfa: 'con TOTP', passkeys: 'con llave de acceso', users: 'usuarios',
    adminOnly: 'La adopción entre usuarios se muestra a los administradores.', yourAccount: 'Tu cuenta',
    mfaOn: 'MFA activado', mfaOff: 'MFA desactivado', yourPasskeys: 'llaves de acceso', addPasskey: 'Añadir una llave de acceso', passkeyAdded: 'Llave de acceso añadida.',
    webhooks: 'Webhooks', url: 'URL', state: 'Estado', backlog: 'Pendientes', ok: 'bien', failing: 'fallando desde',
    disabled: 'desactivado', noWebhooks: 'Sin webhooks.', totalBacklog: 'Entregas pendientes (todos)',
    members: 'Miembros y roles', role: 'Rol', joined: 'Desde', name: 'Nombre', none: 'Nada todavía.',
    admin: 'administrador', orgAdmin: 'administrador de organización', error: 'Algo salió mal.',
  },
  fr: {
    title: 'Tableau de bord de sécurité Janua',
    email: 'E-mail', password: 'Mot de passe', signIn: 'Se connecter', signInPasskey: 'Se connecter avec une clé d’accès',
    mfaTitle: 'Deuxième étape', mfaCode: 'Code de l’application ou code de secours', verify: 'Vérifier',
    usePasskey: 'Utiliser une clé d’accès', signOut: 'Se déconnecter', back: 'Retour',
    notAllowed: 'Ce tableau de bord est réservé aux administrateurs et aux administrateurs d’organisation.',
    conn_idle: 'non connecté', conn_connecting: 'connexion…', conn_live: 'en direct', conn_reconnecting: 'reconnexion…',
    sessions: 'Sessions actives', device: 'Appareil', ip: 'IP', method: 'Méthode', created: 'Créée',
    lastActive: 'Dernière activité', current: 'celle-ci', revoke: 'Révoquer', memberSessions: 'Sessions des membres',
    audit: 'Flux d’audit', actionPrefix: 'Préfixe d’action (ex. user.)', actor: 'Id de l’acteur', organization: 'Organisation',
    all: 'toutes', when: 'Quand', action: 'Action', target: 'Cible', details: 'Détails', close: 'Fermer',
    chart: 'Connexions par minute', signins: 'connexions', failures: 'échecs',
    adoption: 'Adoption de la MFA et des clés d’accès', mfa: 'TOTP activé', passkeys: 'avec une clé d’accès', users: 'utilisateurs',
    adminOnly: 'L’adoption par les utilisateurs est montrée aux administrateurs.', yourAccount: 'Votre compte',
    mfaOn: 'MFA activée', mfaOff: 'MFA désactivée', yourPasskeys: 'clés d’accès', addPasskey: 'Ajouter une clé d’accès', passkeyAdded: 'Clé d’accès ajoutée.',
    webhooks: 'Webhooks', url: 'URL', state: 'État', backlog: 'En attente', ok: 'ok', failing: 'en échec depuis',
    disabled: 'désactivé', noWebhooks: 'Aucun webhook.', totalBacklog: 'Livraisons en attente (tous)',
    members: 'Membres et rôles', role: 'Rôle', joined: 'Depuis', name: 'Nom', none: 'Rien pour l’instant.',
    admin: 'administrateur', orgAdmin: 'administrateur d’organisation', error: 'Une erreur est survenue.',
  },
  de: {
    title: 'Janua-Sicherheitsdashboard',
    email: 'E-Mail', password: 'Passwort', signIn: 'Anmelden', signInPasskey: 'Mit Passkey anmelden',
    mfaTitle: 'Zweiter Schritt', mfaCode: 'Authenticator- oder Backup-Code', verify: 'Bestätigen',
    usePasskey: 'Stattdessen Passkey verwenden', signOut: 'Abmelden', back: 'Zurück',
    notAllowed: 'Dieses Dashboard ist für Administratoren und Organisationsadmins.',
    conn_idle: 'nicht verbunden', conn_connecting: 'verbinde…', conn_live: 'live', conn_reconnecting: 'verbinde neu…',
    sessions: 'Aktive Sitzungen', device: 'Gerät', ip: 'IP', method: 'Methode', created: 'Erstellt',
    lastActive: 'Zuletzt aktiv', current: 'diese', revoke: 'Widerrufen', memberSessions: 'Sitzungsereignisse der Mitglieder',
    audit: 'Audit-Stream', actionPrefix: 'Aktionspräfix (z. B. user.)', actor: 'Akteur-ID', organization: 'Organisation',
    all: 'alle', when: 'Wann', action: 'Aktion', target: 'Ziel', details: 'Details', close: 'Schließen',
    chart: 'Anmeldungen pro Minute', signins: 'Anmeldungen', failures: 'Fehlschläge',
    adoption: 'Verbreitung von MFA und Passkeys', mfa: 'mit TOTP', passkeys: 'mit Passkey', users: 'Benutzer',
    adminOnly: 'Die Verbreitung unter allen Benutzern sehen Administratoren.', yourAccount: 'Ihr Konto',
    mfaOn: 'MFA an', mfaOff: 'MFA aus', yourPasskeys: 'Passkeys', addPasskey: 'Passkey hinzufügen', passkeyAdded: 'Passkey hinzugefügt.',
    webhooks: 'Webhook-Endpunkte', url: 'URL', state: 'Zustand', backlog: 'Ausstehend', ok: 'ok', failing: 'fehlerhaft seit',
    disabled: 'abgeschaltet', noWebhooks: 'Keine Endpunkte.', totalBacklog: 'Ausstehende Zustellungen (alle)',
    members: 'Mitglieder und Rollen', role: 'Rolle', joined: 'Beigetreten', name: 'Name', none: 'Noch nichts.',
    admin: 'Administrator', orgAdmin: 'Organisationsadmin', error: 'Etwas ist schiefgelaufen.',
  },
};

/** The language to show: the first of the browser's languages Janua speaks, else English. */
export function pickLanguage(languages) {
  for (const tag of languages || []) {
    const base = String(tag).toLowerCase().split('-')[0];
    if (MESSAGES[base]) return base;
  }
  return 'en';
}

export const LANG = pickLanguage(typeof navigator !== 'undefined' ? navigator.languages || [navigator.language] : []);

/** The message `key` in the chosen language. */
export function t(key) {
  return MESSAGES[LANG][key] ?? MESSAGES.en[key] ?? key;
}
