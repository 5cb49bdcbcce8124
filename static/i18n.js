// The words of the gallery page and the share page in English and Brazilian Portuguese.
// `t(key, values)` fills {name} slots; callers set the result as text, never as HTML.
const messages = {
  en: {
    title: 'Gallery', language: 'Language', upload: 'Upload photos',
    drop: 'Drop photos here or choose files', hint: 'JPEG, PNG or WebP, up to {size} each',
    operations: 'Operations', noRotation: 'No rotation', rotate90: 'Rotate 90°', rotate180: 'Rotate 180°',
    rotate270: 'Rotate 270°', grayscale: 'Black and white',
    notifyHint: 'When your photos are done, you are told at the contacts in your profile.',
    email: 'E-mail', telegram: 'Telegram chat id', gallery: 'Photos', empty: 'No photos yet.',
    download: 'Download original', delete: 'Delete', close: 'Close', confirmDelete: 'Delete {name}?',
    queued: 'queued', processing: 'processing', done: 'done', failed: 'failed', uploading: 'uploading',
    badType: '{name}: not a JPEG, PNG or WebP photo', tooBig: '{name}: larger than {size}',
    uploadFailed: '{name}: {error}', networkError: 'network error', open: 'Open {name}',
    // logging in, first run, invites
    login: 'Log in', password: 'Password', name: 'Name', passwordHint: 'At least 10 characters.',
    setupTitle: 'Create the first account',
    setupHint: 'Nobody has an account yet. This first account runs the gallery and invites the others.',
    createAccount: 'Create account', inviteTitle: 'Welcome',
    inviteWho: '{name}, you are invited to this gallery as {email}. Choose a password to come in.',
    acceptInvite: 'Set password and enter',
    inviteGone: 'This invite link no longer works: it was used already, it expired, or it never existed. Ask for a new one, or log in.',
    sessionEnded: 'Your session has ended. Please log in again.',
    // the account menu
    profile: 'Profile', changePassword: 'Change password', apiTokens: 'API tokens', people: 'People',
    logout: 'Log out', notifyTitle: 'Tell me when my uploads are done', save: 'Save', saved: 'Saved.',
    currentPassword: 'Current password', newPassword: 'New password',
    passwordChanged: 'Password changed. Your other sessions were logged out.',
    tokensHint: 'For scripts: send a token as "Authorization: Bearer TOKEN".',
    tokenName: 'Token name', createToken: 'Create token', noTokens: 'No tokens yet.',
    tokenOnce: 'Copy this token now: it is not shown again.',
    tokenDates: 'created {created}, {used}', tokenUsed: 'last used {date}', tokenNeverUsed: 'never used',
    confirmDeleteToken: 'Delete the token {name}? Scripts using it stop working.',
    invitePerson: 'Invite a person', role: 'Role', admin: 'Administrator', member: 'Member', invite: 'Invite',
    pending: 'invite pending', you: '(you)', remove: 'Remove',
    confirmRemove: 'Remove {name}? Their photos stay in the gallery and become yours.',
    inviteOnce: 'Send this link to {name}. It works once, until {date}, and is not shown again.',
    // sharing
    owner: 'By {name}', share: 'Share', expiresIn: 'Link valid for', oneDay: '1 day', sevenDays: '7 days',
    thirtyDays: '30 days', createLink: 'Create link', shareUrl: 'Share link',
    shareUntil: 'Anyone with this link can see and download the photo until {date}.',
    loading: 'Loading…', linkGone: 'This link has expired or does not exist.',
    previewPending: 'The preview is not ready yet; the original can be downloaded.',
    sharedUntil: 'Shared until {date}.',
    // the admin view
    adminPage: 'Processing', backToPhotos: 'Back to photos',
    adminUpdated: 'Updated {time}; refreshed every {seconds} s.',
    queuesTitle: 'Jobs waiting', laneUpload: 'New uploads', laneBulk: 'Bulk work',
    laneRetrying: 'Waiting to retry', laneDead: 'Dead-lettered',
    activityTitle: 'Jobs finished per minute', lastMinute: 'Last minute', lastHour: 'Last hour',
    doneFailed: '{done} done, {failed} failed', hourAgo: '60 min ago', now: 'now',
    reprocessTitle: 'Reprocess',
    reprocessHint: 'Queue photos again on the bulk lane, behind new uploads: those missing a variant of the current list and the failed ones, or every photo.',
    reprocessMissing: 'Reprocess missing', reprocessAll: 'Reprocess all',
    confirmReprocessAll: 'Queue every photo again? The workers make all its variants anew.',
    reprocessQueued: '{queued} photos queued; {in_flight} were on their way already.',
    failedTitle: 'Failed photos', noFailed: 'No failed photos.', colPhoto: 'Photo', colError: 'Error',
    colAttempts: 'Attempts', colOwner: 'Uploaded by', colUploaded: 'Uploaded', retry: 'Retry',
    retried: 'queued again', showMore: 'Show more', onlyNewest: 'Only the {count} newest are shown.',
  },
  'pt-BR': {
    title: 'Galeria', language: 'Idioma', upload: 'Enviar fotos',
    drop: 'Solte as fotos aqui ou escolha os arquivos', hint: 'JPEG, PNG ou WebP, até {size} cada',
    operations: 'Operações', noRotation: 'Sem rotação', rotate90: 'Girar 90°', rotate180: 'Girar 180°',
    rotate270: 'Girar 270°', grayscale: 'Preto e branco',
    notifyHint: 'Quando suas fotos ficarem prontas, você é avisado nos contatos do seu perfil.',
    email: 'E-mail', telegram: 'ID do chat no Telegram', gallery: 'Fotos', empty: 'Nenhuma foto ainda.',
    download: 'Baixar original', delete: 'Excluir', close: 'Fechar', confirmDelete: 'Excluir {name}?',
    queued: 'na fila', processing: 'processando', done: 'pronta', failed: 'falhou', uploading: 'enviando',
    badType: '{name}: não é uma foto JPEG, PNG ou WebP', tooBig: '{name}: maior que {size}',
    uploadFailed: '{name}: {error}', networkError: 'erro de rede', open: 'Abrir {name}',
    login: 'Entrar', password: 'Senha', name: 'Nome', passwordHint: 'Pelo menos 10 caracteres.',
    setupTitle: 'Crie a primeira conta',
    setupHint: 'Ninguém tem conta ainda. Esta primeira conta administra a galeria e convida as outras pessoas.',
    createAccount: 'Criar conta', inviteTitle: 'Boas-vindas',
    inviteWho: '{name}, você foi convidado para esta galeria como {email}. Escolha uma senha para entrar.',
    acceptInvite: 'Definir senha e entrar',
    inviteGone: 'Este link de convite não funciona mais: já foi usado, expirou ou nunca existiu. Peça um novo ou entre.',
    sessionEnded: 'Sua sessão terminou. Entre novamente.',
    profile: 'Perfil', changePassword: 'Alterar senha', apiTokens: 'Tokens de API', people: 'Pessoas',
    logout: 'Sair', notifyTitle: 'Avise-me quando meus envios terminarem', save: 'Salvar', saved: 'Salvo.',
    currentPassword: 'Senha atual', newPassword: 'Nova senha',
    passwordChanged: 'Senha alterada. Suas outras sessões foram encerradas.',
    tokensHint: 'Para scripts: envie o token como "Authorization: Bearer TOKEN".',
    tokenName: 'Nome do token', createToken: 'Criar token', noTokens: 'Nenhum token ainda.',
    tokenOnce: 'Copie este token agora: ele não será mostrado de novo.',
    tokenDates: 'criado em {created}, {used}', tokenUsed: 'último uso em {date}', tokenNeverUsed: 'nunca usado',
    confirmDeleteToken: 'Excluir o token {name}? Os scripts que o usam param de funcionar.',
    invitePerson: 'Convidar uma pessoa', role: 'Papel', admin: 'Administrador', member: 'Membro', invite: 'Convidar',
    pending: 'convite pendente', you: '(você)', remove: 'Remover',
    confirmRemove: 'Remover {name}? As fotos dessa pessoa continuam na galeria e passam a ser suas.',
    inviteOnce: 'Envie este link para {name}. Ele funciona uma vez, até {date}, e não será mostrado de novo.',
    owner: 'Por {name}', share: 'Compartilhar', expiresIn: 'Link válido por', oneDay: '1 dia', sevenDays: '7 dias',
    thirtyDays: '30 dias', createLink: 'Criar link', shareUrl: 'Link de compartilhamento',
    shareUntil: 'Qualquer pessoa com este link pode ver e baixar a foto até {date}.',
    loading: 'Carregando…', linkGone: 'Este link expirou ou não existe.',
    previewPending: 'A prévia ainda não está pronta; o original pode ser baixado.',
    sharedUntil: 'Compartilhada até {date}.',
    adminPage: 'Processamento', backToPhotos: 'Voltar às fotos',
    adminUpdated: 'Atualizado às {time}; atualiza a cada {seconds} s.',
    queuesTitle: 'Trabalhos na fila', laneUpload: 'Novos envios', laneBulk: 'Trabalho em lote',
    laneRetrying: 'Aguardando nova tentativa', laneDead: 'Descartados (dead-letter)',
    activityTitle: 'Trabalhos concluídos por minuto', lastMinute: 'Último minuto', lastHour: 'Última hora',
    doneFailed: '{done} prontos, {failed} com falha', hourAgo: 'há 60 min', now: 'agora',
    reprocessTitle: 'Reprocessar',
    reprocessHint: 'Coloca fotos de novo na fila de lote, atrás dos novos envios: as que não têm uma variante da lista atual e as que falharam, ou todas as fotos.',
    reprocessMissing: 'Reprocessar pendentes', reprocessAll: 'Reprocessar todas',
    confirmReprocessAll: 'Colocar todas as fotos na fila de novo? Os workers refazem todas as variantes.',
    reprocessQueued: '{queued} fotos na fila; {in_flight} já estavam a caminho.',
    failedTitle: 'Fotos com falha', noFailed: 'Nenhuma foto com falha.', colPhoto: 'Foto', colError: 'Erro',
    colAttempts: 'Tentativas', colOwner: 'Enviada por', colUploaded: 'Enviada em', retry: 'Tentar de novo',
    retried: 'na fila de novo', showMore: 'Mostrar mais', onlyNewest: 'Só as {count} mais recentes aparecem.',
  },
};

const stored = localStorage.getItem('gallery.lang');
const preferred = (navigator.languages || [navigator.language]).find((l) => l.toLowerCase().startsWith('pt')) ? 'pt-BR' : 'en';
let lang = messages[stored] ? stored : preferred;

export function language() { return lang; }

export function setLanguage(next) {
  if (!messages[next]) return;
  lang = next;
  localStorage.setItem('gallery.lang', next);
}

export function t(key, values = {}) {
  const text = messages[lang][key] ?? messages.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(values[name] ?? ''));
}

/// A date and time from the API (RFC 3339) as the reader's language writes it.
export function formatDate(value) {
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString(lang);
}

/// Fills every element marked data-i18n with its text (as text, never as HTML).
export function translatePage() {
  document.documentElement.lang = lang;
  for (const element of document.querySelectorAll('[data-i18n]')) element.textContent = t(element.dataset.i18n);
}
