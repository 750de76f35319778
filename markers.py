import sys
for fn in sys.argv[1:]:
    b=open(fn,'rb').read(); i=2; out=[]
    while i < len(b):
        assert b[i]==0xFF, (fn,i)
        m=b[i+1]
        if m==0xDA: out.append(('SOS+data',len(b)-i)); break
        L=b[i+2]<<8|b[i+3]; out.append((hex(m),L+2)); i+=2+L
    print(fn, len(b), out)
