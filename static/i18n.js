// The page's words in English and Brazilian Portuguese. `t(key, values)` fills {name} slots.
const messages = {
  en: {
    title: 'Gallery', language: 'Language', upload: 'Upload photos',
    drop: 'Drop photos here or choose files', hint: 'JPEG, PNG or WebP, up to {size} each',
    operations: 'Operations', noRotation: 'No rotation', rotate90: 'Rotate 90°', rotate180: 'Rotate 180°',
    rotate270: 'Rotate 270°', grayscale: 'Black and white', notify: 'Tell me when it is done (optional)',
    email: 'E-mail', telegram: 'Telegram chat id', gallery: 'Photos', empty: 'No photos yet.',
    download: 'Download original', delete: 'Delete', close: 'Close', confirmDelete: 'Delete {name}?',
    queued: 'queued', processing: 'processing', done: 'done', failed: 'failed', uploading: 'uploading',
    badType: '{name}: not a JPEG, PNG or WebP photo', tooBig: '{name}: larger than {size}',
    uploadFailed: '{name}: {error}', networkError: 'network error', open: 'Open {name}',
  },
  'pt-BR': {
    title: 'Galeria', language: 'Idioma', upload: 'Enviar fotos',
    drop: 'Solte as fotos aqui ou escolha os arquivos', hint: 'JPEG, PNG ou WebP, até {size} cada',
    operations: 'Operações', noRotation: 'Sem rotação', rotate90: 'Girar 90°', rotate180: 'Girar 180°',
    rotate270: 'Girar 270°', grayscale: 'Preto e branco', notify: 'Avise-me quando terminar (opcional)',
    email: 'E-mail', telegram: 'ID do chat no Telegram', gallery: 'Fotos', empty: 'Nenhuma foto ainda.',
    download: 'Baixar original', delete: 'Excluir', close: 'Fechar', confirmDelete: 'Excluir {name}?',
    queued: 'na fila', processing: 'processando', done: 'pronta', failed: 'falhou', uploading: 'enviando',
    badType: '{name}: não é uma foto JPEG, PNG ou WebP', tooBig: '{name}: maior que {size}',
    uploadFailed: '{name}: {error}', networkError: 'erro de rede', open: 'Abrir {name}',
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

/// Fills every element marked data-i18n with its text (as text, never as HTML).
export function translatePage() {
  document.documentElement.lang = lang;
  for (const element of document.querySelectorAll('[data-i18n]')) element.textContent = t(element.dataset.i18n);
}
