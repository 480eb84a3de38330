// i18n.js: the console's words in English and French, and the locale-aware
// formatting of dates and numbers (Intl). Strings here are ours, never data.

const en = {
  skip: 'Skip to content', language: 'Language',
  signIn: 'Sign in', token: 'API token', tokenHelp: 'Your personal connlog token (cl_…). It stays in this tab\'s memory only and is forgotten on sign out, after 15 minutes without activity, or when the tab closes.',
  signOut: 'Sign out', signedInAs: (n, r) => `${n} (${r})`, expired: (m) => `Your session expired after ${m} minutes without activity: sign in again.`,
  oidcSignIn: (n) => `Sign in with ${n}`, oidcHelp: 'Your organisation\'s sign-in page opens, then brings you back here.', orToken: 'Or with an API token', oidcGoing: 'Opening your organisation\'s sign-in page…',
  purposeTitle: 'Purpose of this session', purpose: 'Purpose (case, ticket or requisition reference)',
  purposeHelp: 'Every request you make is recorded in the audit trail with this purpose.', purposeSet: 'Start', purposeChange: 'Change purpose',
  purposeShort: 'The purpose must be 3 to 200 characters.', purposeLabel: 'Purpose:',
  nav: { search: 'Access search', connections: 'Connection records', requisitions: 'Requisitions', audit: 'Audit', retention: 'Retention', audience: 'Audience' },
  forbiddenView: (r) => `Your role (${r}) does not allow this view.`,
  ip: 'IP address or CIDR network', from: 'From', to: 'To', site: 'Site', path: 'Path starts with', status: 'Status (404 or 4xx)',
  ua: 'User agent contains', user: 'User', operation: 'Operation', any: 'any', limit: 'Rows per page',
  tz: (z) => `Time zone: ${z}`, tzLocal: 'Show local time', tzUTC: 'Show UTC', search: 'Search',
  exportCSV: 'Export CSV', exportNDJSON: 'Export NDJSON', exportStarted: 'Export started: your browser is downloading it.',
  rows: (n, t) => `${n} rows${t ? ' (more pages)' : ''}`, none: 'No rows match.', next: 'Next page', first: 'First page', pageOf: (p) => `Page ${p}`,
  histogram: (n) => `Hits over time on this page (${n} rows)`, summary: 'Summary of', summaryBtn: 'Summary',
  cols: { time: 'Time', ip: 'Client', port: 'Port', site: 'Site', method: 'Method', path: 'Path', status: 'Status', bytes: 'Bytes', referer: 'Referer', ua: 'User agent', user: 'User', operation: 'Operation', protocol: 'Protocol' },
  sum: { requests: 'Requests', first: 'First seen', last: 'Last seen', bytes: 'Bytes', ports: 'Distinct client ports', paths: 'Distinct paths', sites: 'Sites', methods: 'Methods', statuses: 'Statuses', uas: 'User agents', limited: 'Limited to your sites' },
  auditTitle: 'Audit trail', actor: 'Actor', role: 'Role', endpoint: 'Endpoint', outcome: 'Outcome', purposeContains: 'Purpose contains',
  acols: { time: 'Time', actor: 'Actor', role: 'Role', source: 'Source', endpoint: 'Endpoint', purpose: 'Purpose', filters: 'Filters', status: 'Status', rows: 'Rows', outcome: 'Outcome', reason: 'Reason' },
  subjectTitle: 'Subject view: who consulted data about this address', subjectIP: 'Data subject\'s IP address', subjectSearch: 'Find consultations',
  scols: { date: 'Date', purpose: 'Purpose', endpoint: 'Endpoint', rows: 'Rows' },
  retentionTitle: 'Retention report', generated: (d) => `Generated ${d}`, grace: 'Grace', overdueYes: 'Some data is kept longer than promised', overdueNo: 'All data within its retention policy',
  print: 'Print', downloadJSON: 'Download JSON', printedOn: (d) => `printed ${d}`,
  rcols: { class: 'Data class', table: 'Table', site: 'Site', policy: 'Policy', oldest: 'Oldest row', newest: 'Newest row', rows: 'Rows', bytes: 'Bytes on disk', last: 'Last enforcement', removed: 'Last removed', overdue: 'Overdue', detail: 'Detail', topic: 'Kafka topic', partition: 'Partition', manifests: 'Manifests', hash: 'Head hash (SHA-256)', key: 'Signing key', created: 'Signed at' },
  chainHeads: 'Integrity chain heads', chainHeadsHelp: 'The latest signed manifest of each chain when this report was made: connlog verify proves later that this state was neither changed nor cut.',
  yes: 'yes', no: 'no',
  reqTitle: 'Requisition register', reqNew: 'Record a requisition', authority: 'Authority', officerName: 'Officer', officerService: 'Service',
  article: 'Legal basis (article)', articleText: 'Article text (if other)', procedure: 'Procedure reference', received: 'Date received', due: 'Answer due by',
  selector: 'Selector', port: 'Port', create: 'Record', run: 'Run', download: 'Download package', answered: 'Mark answered',
  sentAt: 'Sent at', how: 'Sent how', reqStatus: { new: 'received', run: 'run', answered: 'answered' }, reqOverdue: 'overdue', noDue: 'not given',
  qcols: { id: 'ID', received: 'Received', due: 'Due', authority: 'Authority', article: 'Article', procedure: 'Procedure', status: 'Status', runs: 'Runs', actions: 'Actions' },
  runDone: (n, h) => `Run done: ${n} rows, package SHA-256 ${h}.`, answeredDone: 'Answer recorded.', created: 'Recorded.',
  holdsTitle: 'Legal holds', holdNew: 'Create a hold', reference: 'Reference', expires: 'Expires', requisition: 'Requisition ID (optional)', release: 'Release', released: 'Released',
  hcols: { id: 'ID', reference: 'Reference', ip: 'IP', site: 'Site', window: 'Window', expires: 'Expires', rows: 'Rows', active: 'Active', actions: 'Actions' },
  audienceTitle: 'Audience', by: 'By', granularity: 'Granularity', hour: 'hour', day: 'day', show: 'Show',
  hits: 'Hits', visitors: 'Visitors', key: 'Value', audienceChart: 'Hits and visitors over time', audienceNote: (k) => `Cells with fewer than ${k} visitors are merged into "(other)"; nothing is shown per visitor.`,
  loading: 'Loading…', networkError: 'The connlog API could not be reached.',
};

const fr = {
  skip: 'Aller au contenu', language: 'Langue',
  signIn: 'Se connecter', token: 'Jeton d\'API', tokenHelp: 'Votre jeton connlog personnel (cl_…). Il reste dans la mémoire de cet onglet seulement et est oublié à la déconnexion, après 15 minutes d\'inactivité ou à la fermeture de l\'onglet.',
  signOut: 'Se déconnecter', signedInAs: (n, r) => `${n} (${r})`, expired: (m) => `Votre session a expiré après ${m} minutes d'inactivité : reconnectez-vous.`,
  oidcSignIn: (n) => `Se connecter avec ${n}`, oidcHelp: 'La page de connexion de votre organisation s\'ouvre, puis vous ramène ici.', orToken: 'Ou avec un jeton d\'API', oidcGoing: 'Ouverture de la page de connexion de votre organisation…',
  purposeTitle: 'Finalité de cette session', purpose: 'Finalité (référence de dossier, de ticket ou de réquisition)',
  purposeHelp: 'Chacune de vos requêtes est inscrite au journal d\'audit avec cette finalité.', purposeSet: 'Commencer', purposeChange: 'Changer de finalité',
  purposeShort: 'La finalité doit compter de 3 à 200 caractères.', purposeLabel: 'Finalité :',
  nav: { search: 'Recherche d\'accès', connections: 'Données de connexion', requisitions: 'Réquisitions', audit: 'Audit', retention: 'Conservation', audience: 'Audience' },
  forbiddenView: (r) => `Votre rôle (${r}) ne permet pas cette vue.`,
  ip: 'Adresse IP ou réseau CIDR', from: 'Du', to: 'Au', site: 'Site', path: 'Chemin commençant par', status: 'Statut (404 ou 4xx)',
  ua: 'User agent contenant', user: 'Utilisateur', operation: 'Opération', any: 'toutes', limit: 'Lignes par page',
  tz: (z) => `Fuseau horaire : ${z}`, tzLocal: 'Afficher l\'heure locale', tzUTC: 'Afficher en UTC', search: 'Rechercher',
  exportCSV: 'Exporter en CSV', exportNDJSON: 'Exporter en NDJSON', exportStarted: 'Export lancé : votre navigateur le télécharge.',
  rows: (n, t) => `${n} lignes${t ? ' (autres pages)' : ''}`, none: 'Aucune ligne ne correspond.', next: 'Page suivante', first: 'Première page', pageOf: (p) => `Page ${p}`,
  histogram: (n) => `Requêtes dans le temps sur cette page (${n} lignes)`, summary: 'Synthèse de', summaryBtn: 'Synthèse',
  cols: { time: 'Heure', ip: 'Client', port: 'Port', site: 'Site', method: 'Méthode', path: 'Chemin', status: 'Statut', bytes: 'Octets', referer: 'Référent', ua: 'User agent', user: 'Utilisateur', operation: 'Opération', protocol: 'Protocole' },
  sum: { requests: 'Requêtes', first: 'Première vue', last: 'Dernière vue', bytes: 'Octets', ports: 'Ports client distincts', paths: 'Chemins distincts', sites: 'Sites', methods: 'Méthodes', statuses: 'Statuts', uas: 'User agents', limited: 'Limité à vos sites' },
  auditTitle: 'Journal d\'audit', actor: 'Acteur', role: 'Rôle', endpoint: 'Point d\'accès', outcome: 'Résultat', purposeContains: 'Finalité contenant',
  acols: { time: 'Heure', actor: 'Acteur', role: 'Rôle', source: 'Source', endpoint: 'Point d\'accès', purpose: 'Finalité', filters: 'Filtres', status: 'Statut', rows: 'Lignes', outcome: 'Résultat', reason: 'Motif' },
  subjectTitle: 'Vue de la personne concernée : qui a consulté des données sur cette adresse', subjectIP: 'Adresse IP de la personne concernée', subjectSearch: 'Chercher les consultations',
  scols: { date: 'Date', purpose: 'Finalité', endpoint: 'Point d\'accès', rows: 'Lignes' },
  retentionTitle: 'Rapport de conservation', generated: (d) => `Établi le ${d}`, grace: 'Délai de grâce', overdueYes: 'Des données sont conservées plus longtemps que promis', overdueNo: 'Toutes les données respectent leur durée de conservation',
  print: 'Imprimer', downloadJSON: 'Télécharger en JSON', printedOn: (d) => `imprimé le ${d}`,
  rcols: { class: 'Catégorie', table: 'Table', site: 'Site', policy: 'Durée', oldest: 'Ligne la plus ancienne', newest: 'Ligne la plus récente', rows: 'Lignes', bytes: 'Octets sur disque', last: 'Dernière purge', removed: 'Lignes purgées', overdue: 'En retard', detail: 'Détail', topic: 'Topic Kafka', partition: 'Partition', manifests: 'Manifestes', hash: 'Empreinte de tête (SHA-256)', key: 'Clé de signature', created: 'Signé le' },
  chainHeads: 'Têtes des chaînes d\'intégrité', chainHeadsHelp: 'Le dernier manifeste signé de chaque chaîne à la date de ce rapport : connlog verify prouve ensuite que cet état n\'a été ni modifié ni tronqué.',
  yes: 'oui', no: 'non',
  reqTitle: 'Registre des réquisitions', reqNew: 'Enregistrer une réquisition', authority: 'Autorité', officerName: 'Officier', officerService: 'Service',
  article: 'Base légale (article)', articleText: 'Texte de l\'article (si autre)', procedure: 'Référence de procédure', received: 'Date de réception', due: 'Réponse attendue le',
  selector: 'Sélecteur', port: 'Port', create: 'Enregistrer', run: 'Exécuter', download: 'Télécharger le paquet', answered: 'Marquer répondue',
  sentAt: 'Envoyée le', how: 'Moyen d\'envoi', reqStatus: { new: 'reçue', run: 'exécutée', answered: 'répondue' }, reqOverdue: 'en retard', noDue: 'non précisée',
  qcols: { id: 'ID', received: 'Reçue', due: 'Échéance', authority: 'Autorité', article: 'Article', procedure: 'Procédure', status: 'État', runs: 'Exécutions', actions: 'Actions' },
  runDone: (n, h) => `Exécution terminée : ${n} lignes, paquet SHA-256 ${h}.`, answeredDone: 'Réponse enregistrée.', created: 'Enregistrée.',
  holdsTitle: 'Gels de données', holdNew: 'Créer un gel', reference: 'Référence', expires: 'Expire le', requisition: 'ID de réquisition (facultatif)', release: 'Lever', released: 'Levé',
  hcols: { id: 'ID', reference: 'Référence', ip: 'IP', site: 'Site', window: 'Période', expires: 'Expire', rows: 'Lignes', active: 'Actif', actions: 'Actions' },
  audienceTitle: 'Audience', by: 'Par', granularity: 'Granularité', hour: 'heure', day: 'jour', show: 'Afficher',
  hits: 'Requêtes', visitors: 'Visiteurs', key: 'Valeur', audienceChart: 'Requêtes et visiteurs dans le temps', audienceNote: (k) => `Les cases de moins de ${k} visiteurs sont regroupées dans « (other) » ; rien n'est montré par visiteur.`,
  loading: 'Chargement…', networkError: 'L\'API connlog est injoignable.',
};

const dicts = { en, fr };

/** The current locale, 'en' or 'fr': from the browser's language, then the switch. */
export let lang = (navigator.language || 'en').toLowerCase().startsWith('fr') ? 'fr' : 'en';

export function setLang(l) { lang = dicts[l] ? l : 'en'; document.documentElement.lang = lang; }

/** t returns the current locale's entry for key (a string, a function or a table). */
export function t(key) {
  return dicts[lang][key] ?? en[key] ?? key;
}

/** fmtNumber formats an integer per locale. */
export function fmtNumber(n) {
  return new Intl.NumberFormat(lang).format(n ?? 0);
}

/** fmtTime formats an RFC 3339 time per locale, in UTC or in the browser's zone. */
export function fmtTime(s, utc) {
  if (!s) return '';
  const d = new Date(s);
  if (Number.isNaN(d.getTime())) return String(s);
  return new Intl.DateTimeFormat(lang, { dateStyle: 'short', timeStyle: 'medium', timeZone: utc ? 'UTC' : undefined }).format(d);
}

/** fmtDay formats a calendar date (YYYY-MM-DD or a time at UTC midnight) per locale. */
export function fmtDay(s) {
  if (!s) return '';
  const d = new Date(String(s).length === 10 ? s + 'T00:00:00Z' : s);
  if (Number.isNaN(d.getTime())) return String(s);
  return new Intl.DateTimeFormat(lang, { dateStyle: 'medium', timeZone: 'UTC' }).format(d);
}

/** localZone is the browser's IANA time zone name. */
export const localZone = Intl.DateTimeFormat().resolvedOptions().timeZone || 'local';
