export const metadata = { title: 'tokenrelay · Next.js chat' };

export default function RootLayout({ children }) {
  return (
    <html lang="en">
      <body style={{ fontFamily: 'system-ui, sans-serif', maxWidth: 640, margin: '2rem auto' }}>{children}</body>
    </html>
  );
}
